// The dock's status screen: live updates. The server sends the rendered
// #board fragment (every value escaped by the server) as a server-sent
// event whenever it changes; it is parsed inertly (DOMParser runs no
// script) and swapped in. Without JavaScript the page reloads itself.
'use strict';
(function () {
  var board = document.getElementById('board');
  if (!board || !window.EventSource) {
    return;
  }
  var lang = document.documentElement.getAttribute('lang') || 'zh-CN';
  var source = new EventSource('/status/events?lang=' + encodeURIComponent(lang));
  var live = document.querySelector('.live');
  source.addEventListener('board', function (ev) {
    var doc = new DOMParser().parseFromString(ev.data, 'text/html');
    var fresh = doc.getElementById('board');
    if (fresh) {
      board.replaceWith(fresh);
      board = fresh;
    }
    if (live) {
      live.classList.add('on');
    }
  });
  source.addEventListener('error', function () {
    if (live) {
      live.classList.remove('on');
    }
  });
})();
