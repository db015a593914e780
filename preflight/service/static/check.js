// Live progress on a check's page: the page works without this (it refreshes itself), this only makes it smooth.
"use strict";
(function () {
  var root = document.getElementById("check");
  if (!root) { return; }
  var id = root.getAttribute("data-check-id");
  var rounds = 0;
  function cell(text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) { td.className = className; }
    return td;
  }
  function update(check) {
    var progress = document.getElementById("progress");
    if (progress) { progress.textContent = check.progress.done + " of " + check.progress.total; }
    var body = document.getElementById("results");
    if (body && check.results_since === body.rows.length) {
      for (var i = 0; i < check.results.length; i++) {
        var result = check.results[i];
        var row = document.createElement("tr");
        var code = document.createElement("code");
        code.textContent = result.id;
        var idCell = document.createElement("td");
        idCell.appendChild(code);
        row.appendChild(cell(result.vantage ? result.host + " from " + result.vantage : result.host));
        row.appendChild(idCell);
        row.appendChild(cell(result.status, "status " + result.status));
        row.appendChild(cell(result.summary));
        body.appendChild(row);
      }
    }
    if (check.state === "done" || check.state === "failed") { window.location.reload(); return false; }
    return true;
  }
  function poll() {
    rounds += 1;
    if (rounds > 2400) { return; }  // an hour: a page left open stops asking
    var body = document.getElementById("results");
    var seen = body ? body.rows.length : 0;
    fetch("/api/v1/checks/" + encodeURIComponent(id) + "?since=" + seen, { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (check) { if (check === null || update(check)) { window.setTimeout(poll, 1500); } })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
}());
