import pytest

from kubelite.pki import load_token_file, parse_token_file


def _write(tmp_path, text):
    p = tmp_path / "tokens.csv"
    p.write_text(text)
    return str(p)


def test_formats(tmp_path):
    path = _write(
        tmp_path,
        'tok1,alice,uid1,"dev,ops"\n'
        "\n"
        "tok2,bob,uid2\n"
        "tok3,carol,uid3,single,extra-column-ignored\n"
        'tok4,dave,uid4,""\n',
    )
    assert load_token_file(path) == {
        "tok1": ("alice", "uid1", ["dev", "ops"]),
        "tok2": ("bob", "uid2", []),
        "tok3": ("carol", "uid3", ["single"]),
        "tok4": ("dave", "uid4", []),
    }


def test_lookup(tmp_path):
    tf = parse_token_file(_write(tmp_path, 'secret-token,alice,1,"system:masters"\n'))
    assert tf.lookup("secret-token") == ("alice", "1", ["system:masters"])
    assert tf.lookup("secret-tokem") is None
    assert tf.lookup("") is None
    assert tf.lookup("secret-token ") is None
    assert tf.lookup("\udcff garbage") is None
    # callers cannot mutate the stored groups
    tf.lookup("secret-token")[2].append("x")
    assert tf.lookup("secret-token")[2] == ["system:masters"]


def test_too_few_columns_reports_line(tmp_path):
    path = _write(tmp_path, "tok1,alice,uid1\n\n# a comment\n")
    with pytest.raises(ValueError, match=r"line 3: must have at least 3 columns \(token, user name, user uid\), found 1"):
        parse_token_file(path)


def test_line_number_after_multiline_quoted_field(tmp_path):
    path = _write(tmp_path, 'tok1,alice,uid1,"a,\nb"\ntok2,bob\n')
    with pytest.raises(ValueError, match="line 3"):
        parse_token_file(path)


def test_bad_quoting_reports_line(tmp_path):
    path = _write(tmp_path, 'tok1,alice,uid1\ntok2,bob,uid2,"unterminated\n')
    with pytest.raises(ValueError, match="line 2"):
        parse_token_file(path)


def test_empty_token_skipped_and_duplicate_last_wins(tmp_path):
    tf = parse_token_file(_write(tmp_path, ",nobody,0\nt,first,1\nt,second,2\n"))
    assert len(tf) == 1
    assert tf.lookup("t") == ("second", "2", [])
    assert any("empty token" in w and "record number '1'" in w for w in tf.warnings)
    assert any("duplicate token" in w and "record number '3'" in w for w in tf.warnings)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read token file"):
        parse_token_file(str(tmp_path / "nope.csv"))
