// Progressive enhancement only: every page works without it. A section marked
// data-refresh (a ticket whose VMs are still on their way) is fetched again every few
// seconds and replaced in place, until the server stops marking it.
(function () {
  "use strict";
  function refresh() {
    var section = document.querySelector("[data-refresh]");
    if (!section || !section.id) return;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById(section.id);
        if (fresh) section.replaceWith(fresh);
        schedule();
      })
      .catch(schedule);
  }
  function schedule() {
    if (document.querySelector("[data-refresh]")) window.setTimeout(refresh, 2000);
  }
  document.addEventListener("DOMContentLoaded", schedule);
})();
