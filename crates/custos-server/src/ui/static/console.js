// Custos console: times in the viewer's time zone, UTC on hover; the
// search form's times read in that zone too.
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
  // The search form's datetime-local fields carry no zone: on submit,
  // give the server this browser's offset (minutes east of UTC) for each
  // date entered, so that a time typed is a time on the viewer's clock.
  function searchZones() {
    ['search-form', 'supervision-form'].forEach(zoned);
  }
  function zoned(id) {
    var form = document.getElementById(id);
    if (!form) { return; }
    form.addEventListener('submit', function () {
      ['from', 'to'].forEach(function (name) {
        var field = form.elements[name];
        var zone = form.elements[name + '_tz'];
        if (!field || !zone) { return; }
        var d = new Date(field.value);
        zone.value = field.value && !isNaN(d.getTime()) ? String(-d.getTimezoneOffset()) : '';
      });
    });
  }
  // The report's print view: its button prints the page.
  function printButton() {
    var b = document.getElementById('print-report');
    if (b) { b.addEventListener('click', function () { window.print(); }); }
  }
  function start() {
    localTimes();
    searchZones();
    printButton();
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
