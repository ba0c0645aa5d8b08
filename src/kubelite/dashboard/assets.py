"""The dashboard's one script, served from /static/dashboard.js (the CSP allows only 'self' scripts, none inline).

It adds liveness to server-rendered pages and nothing else:
- an element with `data-live` (list and detail pages) opens that server-sent-events URL; on each `change` the
  page is fetched again and its `#live` part swapped in (forms outside `#live` keep what the user typed);
- `#logs[data-follow]` appends the `line` events of a follow stream, scrolling along while at the bottom;
- `.confirm` forms/buttons ask before submitting.
Everything inserted comes from the dashboard's own escaped HTML or is text (`append` of a string)."""

JS = r"""(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (live && window.EventSource) {
    var timer = null;
    var refresh = function () {
      timer = null;
      fetch(window.location.href, {credentials: "same-origin", headers: {"X-Dashboard-Refresh": "1"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (text === null) { return; }
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById("live"), cur = document.getElementById("live");
          if (fresh && cur) { cur.replaceWith(document.importNode(fresh, true)); }
        }).catch(function () {});
    };
    var es = new EventSource(live.getAttribute("data-live"));
    es.addEventListener("change", function () { if (!timer) { timer = setTimeout(refresh, 100); } });
    es.addEventListener("gone", function () { es.close(); });
  }
  var logs = document.getElementById("logs");
  if (logs && logs.getAttribute("data-follow") && window.EventSource) {
    var follow = new EventSource(logs.getAttribute("data-follow"));
    var state = document.getElementById("follow-state");
    follow.addEventListener("line", function (e) {
      var atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.append(e.data + "\n");
      if (atEnd) { logs.scrollTop = logs.scrollHeight; }
    });
    follow.addEventListener("end", function (e) {
      follow.close();
      if (state) { state.textContent = e.data; }
    });
  }
  document.querySelectorAll("form.confirm").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-question") || "Sure?")) { e.preventDefault(); }
    });
  });
})();
"""
