// Custos console: times in the viewer's time zone, UTC on hover.
// No inline script anywhere: the Content-Security-Policy allows only the
// files under /ui/static/.
(function () {
  'use strict';
  function localTimes() {
    var lang = document.documentElement.lang || undefined;
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat(lang, {
        year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit',
        timeZoneName: 'short'
      });
    } catch (e) {
      return;
    }
    document.querySelectorAll('time.ts').forEach(function (el) {
      var utc = el.getAttribute('datetime');
      var d = new Date(utc);
      if (isNaN(d.getTime())) { return; }
      el.textContent = fmt.format(d);
      el.title = 'UTC ' + utc;
      el.dataset.local = '1';
    });
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', localTimes);
  } else {
    localTimes();
  }
})();
