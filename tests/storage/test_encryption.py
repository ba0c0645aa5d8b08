"""Encryption at rest: upstream's EncryptionConfiguration, value formats, and the Store wrapper over SQLite."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.secret import SecretBox

from kubelite.api import errors
from kubelite.api.resources import Registry
from kubelite.storage.encryption import (
    EncryptedStore,
    KeyResources,
    TransformError,
    load_config,
    parse_config,
)
from kubelite.storage.sqlite import SQLiteStore

K1 = bytes(range(32))
K2 = bytes(range(1, 33))
SECRET_KEY = "/registry/secrets/default/s1"
PLAIN = b'{"kind":"Secret","data":{"pw":"aHVudGVyMg=="}}'


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def doc(*providers, resources=("secrets",)) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}]}


def aescbc(name="key1", key=K1) -> dict:
    return {"aescbc": {"keys": [{"name": name, "secret": b64(key)}]}}


def aesgcm(name="key1", key=K1) -> dict:
    return {"aesgcm": {"keys": [{"name": name, "secret": b64(key)}]}}


def secretbox(name="key1", key=K1) -> dict:
    return {"secretbox": {"keys": [{"name": name, "secret": b64(key)}]}}


IDENTITY = {"identity": {}}


# ---------------------------------------------------------------- formats, checked with independent code


def test_aescbc_format_is_iv_plus_pkcs7_cbc():
    t = parse_config(doc(aescbc())).transformer_for("", "secrets")
    stored = t.to_storage(PLAIN, SECRET_KEY.encode())
    prefix = b"k8s:enc:aescbc:v1:key1:"
    assert stored.startswith(prefix) and PLAIN not in stored
    body = stored[len(prefix):]
    iv, ct = body[:16], body[16:]
    assert len(ct) % 16 == 0
    dec = Cipher(algorithms.AES(K1), modes.CBC(iv)).decryptor()
    padded = dec.update(ct) + dec.finalize()
    assert padded[:-padded[-1]] == PLAIN and 1 <= padded[-1] <= 16
    assert t.from_storage(stored, SECRET_KEY.encode()) == (PLAIN, False)


def test_aesgcm_format_is_nonce_plus_gcm_bound_to_the_key():
    t = parse_config(doc(aesgcm())).transformer_for("", "secrets")
    stored = t.to_storage(PLAIN, SECRET_KEY.encode())
    body = stored[len(b"k8s:enc:aesgcm:v1:key1:"):]
    assert AESGCM(K1).decrypt(body[:12], body[12:], SECRET_KEY.encode()) == PLAIN
    # the storage key is authenticated: the value copied under another key does not decrypt
    with pytest.raises(TransformError, match="message authentication failed"):
        t.from_storage(stored, b"/registry/secrets/default/other")


def test_secretbox_format_is_nonce_plus_box():
    t = parse_config(doc(secretbox())).transformer_for("", "secrets")
    stored = t.to_storage(PLAIN, SECRET_KEY.encode())
    body = stored[len(b"k8s:enc:secretbox:v1:key1:"):]
    assert SecretBox(K1).decrypt(body[24:], body[:24]) == PLAIN
    assert t.from_storage(stored, b"") == (PLAIN, False)


def test_first_provider_writes_all_read_and_stale_marks_old_ones():
    old = parse_config(doc(aescbc("old", K1))).transformer_for("", "secrets")
    stored_old = old.to_storage(PLAIN, b"k")
    rotated = parse_config(doc(aescbc("new", K2), aescbc("old", K1), IDENTITY)).transformer_for("", "secrets")
    assert rotated.to_storage(PLAIN, b"k").startswith(b"k8s:enc:aescbc:v1:new:")
    assert rotated.from_storage(stored_old, b"k") == (PLAIN, True)
    assert rotated.from_storage(PLAIN, b"k") == (PLAIN, True)  # plaintext via identity, stale too


def test_identity_first_reads_encrypted_data_with_later_providers():
    enc = parse_config(doc(secretbox())).transformer_for("", "secrets")
    t = parse_config(doc(IDENTITY, secretbox())).transformer_for("", "secrets")
    assert t.to_storage(PLAIN, b"") == PLAIN
    assert t.from_storage(enc.to_storage(PLAIN, b""), b"") == (PLAIN, True)


def test_unreadable_values_carry_upstreams_messages():
    stored = parse_config(doc(aescbc("gone", K1))).transformer_for("", "secrets").to_storage(PLAIN, b"")
    with pytest.raises(TransformError, match="^no matching prefix found$"):
        parse_config(doc(aescbc("other", K1))).transformer_for("", "secrets").from_storage(stored, b"")
    # a wrong key mostly breaks the padding; about 1 random IV in 256 gives valid padding over garbage instead
    writer = parse_config(doc(aescbc("gone", K1))).transformer_for("", "secrets")
    wrong = parse_config(doc(aescbc("gone", K2))).transformer_for("", "secrets")
    for _ in range(20):
        try:
            value, _ = wrong.from_storage(writer.to_storage(PLAIN, b""), b"")
        except TransformError as e:
            assert "padding" in str(e) or "PKCS7" in str(e)
            break
        assert value != PLAIN
    else:
        pytest.fail("a wrong aescbc key never broke the padding")
    unconfigured = parse_config(doc(aescbc(), resources=("configmaps",))).transformer_for("", "secrets")
    with pytest.raises(TransformError, match="^identity transformer tried to read encrypted data$"):
        unconfigured.from_storage(stored, b"")


# ---------------------------------------------------------------- the configuration file


def test_resource_wildcards_and_first_entry_wins():
    config = parse_config({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [
            {"resources": ["secrets", "deployments.apps"], "providers": [aescbc("a")]},
            {"resources": ["*.apps"], "providers": [aesgcm("b")]},
            {"resources": ["*."], "providers": [secretbox("c")]},
            {"resources": ["*.*"], "providers": [IDENTITY]},
        ]})
    writer = lambda g, r: config.transformer_for(g, r).writer.prefix  # noqa: E731
    assert writer("", "secrets") == b"k8s:enc:aescbc:v1:a:"
    assert writer("apps", "deployments") == b"k8s:enc:aescbc:v1:a:"
    assert writer("apps", "statefulsets") == b"k8s:enc:aesgcm:v1:b:"
    assert writer("", "configmaps") == b"k8s:enc:secretbox:v1:c:"
    assert writer("batch", "jobs") == b""


@pytest.mark.parametrize("bad, message", [
    (doc({"aescbc": {"keys": [{"name": "k", "secret": b64(b"short")}]}}),
     "resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the "
     "expected length, got 5, expected one of [16 24 32]"),
    (doc({"secretbox": {"keys": [{"name": "k", "secret": b64(bytes(16))}]}}), "expected one of [32]"),
    (doc({"aescbc": {"keys": [{"name": "k", "secret": "%%%"}]}}), "secrets must be base64 encoded"),
    (doc({"aescbc": {"keys": [{"secret": b64(K1)}]}}), "name is a mandatory field for a key"),
    (doc({"aescbc": {"keys": []}}), "at least one keys is required"),
    (doc({**aescbc(), **IDENTITY}), "more than one provider specified in a single element"),
    (doc({"rot13": {}}), "provider does not contain any of the expected providers"),
    (doc(IDENTITY, resources=("Secrets",)), "should not contain any upper case characters"),
    (doc(IDENTITY, resources=("*.*", "secrets")), 'resource "secrets" is masked by earlier rule "*.*"'),
    ({"apiVersion": "v1", "kind": "Config"}, 'no kind "Config" is registered for version "v1"'),
])
def test_invalid_configurations_are_refused(bad, message):
    with pytest.raises(ValueError) as e:
        parse_config(bad)
    assert message in str(e.value)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "enc.yaml"
    path.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
                    "- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: k\n"
                    "        secret: c2hvcnQ=\n")
    with pytest.raises(ValueError, match=r'^error while parsing encryption provider configuration file ".*enc'
                                         r'\.yaml": error while parsing file: resources\[0\]'):
        load_config(str(path))


# ---------------------------------------------------------------- the Store wrapper around SQLite


async def _store(path: str, config_doc: dict | None, **kw) -> EncryptedStore:
    store = EncryptedStore(SQLiteStore(path, fsync=False), parse_config(config_doc) if config_doc else None,
                           KeyResources(Registry()), **kw)
    await store.start()
    return store


def _on_disk(path: str) -> bytes:
    """Every byte SQLite keeps for the database: the file, its WAL and shared memory."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            with open(path + suffix, "rb") as f:
                out += f.read()
    return out


def _raw(path: str, key: str) -> bytes:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT value FROM objects WHERE key = ?", (key,)).fetchone()[0]
    finally:
        db.close()


async def test_store_encrypts_configured_resources_only(tmp_path):
    path = str(tmp_path / "state.db")
    store = await _store(path, doc(aescbc()))
    try:
        kv = await store.create(SECRET_KEY, PLAIN)
        assert kv.value == PLAIN
        await store.create("/registry/configmaps/default/c", b'{"x":1}')
        assert (await store.get(SECRET_KEY)).value == PLAIN
        listed = await store.list("/registry/secrets/")
        assert [i.value for i in listed.items] == [PLAIN]
        raw = _raw(path, SECRET_KEY)
        assert raw.startswith(b"k8s:enc:aescbc:v1:key1:") and b"hunter" not in raw and b"aHVudGVy" not in raw
        assert _raw(path, "/registry/configmaps/default/c") == b'{"x":1}'
        watch = await store.watch("/registry/secrets/", kv.mod_revision)
        await store.update(SECRET_KEY, PLAIN.replace(b"aHVudGVyMg==", b"bmV3"))
        async for event in watch:
            assert event.value.endswith(b'"bmV3"}}') and event.prev_value == PLAIN
            break
        await watch.close()
    finally:
        await store.close()


async def test_missing_key_is_a_500_for_those_objects_only(tmp_path):
    path = str(tmp_path / "state.db")
    store = await _store(path, doc(aescbc()))
    await store.create(SECRET_KEY, PLAIN)
    await store.close()
    store = await _store(path, None)  # restarted without the encryption config
    try:
        with pytest.raises(errors.ApiError) as e:
            await store.get(SECRET_KEY)
        assert e.value.code == 500
        assert e.value.message == "Internal error occurred: identity transformer tried to read encrypted data"
        with pytest.raises(errors.ApiError) as e:
            await store.list("/registry/secrets/")
        assert e.value.message == ('Internal error occurred: unable to transform key "/registry/secrets/default/'
                                   's1": identity transformer tried to read encrypted data')
        await store.create("/registry/configmaps/default/c", b"{}")  # the rest works
        assert (await store.get("/registry/configmaps/default/c")).value == b"{}"
    finally:
        await store.close()
    store = await _store(path, doc(aescbc("key1", K2)))  # right name, wrong secret
    try:
        with pytest.raises(errors.ApiError) as e:
            await store.get(SECRET_KEY)
        assert e.value.code == 500
        assert "invalid padding on input" in e.value.message or "PKCS7" in e.value.message
    finally:
        await store.close()


async def test_rotation_rewrite_then_scrub_leaves_no_old_copy(tmp_path):
    path = str(tmp_path / "state.db")
    store = await _store(path, None)
    await store.create(SECRET_KEY, PLAIN)  # plaintext before encryption was enabled
    for i in range(3):
        await store.update(SECRET_KEY, PLAIN.replace(b"}}", f',"n":"{i}"}}}}'.encode()))
    await store.close()
    assert b"aHVudGVyMg==" in _on_disk(path)  # the history keeps every old plaintext version
    store = await _store(path, doc(aescbc("new", K2), IDENTITY), scrub_after=0.05)
    try:
        current = await store.get(SECRET_KEY)  # read through identity: stale
        await store.update(SECRET_KEY, current.value, current.mod_revision)  # the rewrite
        assert _raw(path, SECRET_KEY).startswith(b"k8s:enc:aescbc:v1:new:")
        assert b"aHVudGVyMg==" in _on_disk(path)  # not gone yet: older versions remain
        for _ in range(100):
            if store.scrubs:
                break
            await asyncio.sleep(0.05)
        assert store.scrubs == 1
        assert store.compacted_revision == store.current_revision
        assert b"aHVudGVyMg==" not in _on_disk(path)  # scrubbed while the store is open
        assert (await store.get(SECRET_KEY)).value == current.value
    finally:
        await store.close()
