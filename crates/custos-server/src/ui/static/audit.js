// Custos console, audit page: checks custody proofs IN THIS BROWSER with
// WebCrypto, trusting nothing the server says about them:
// - each entry's leaf hash SHA-256(0x00 || entry bytes) (RFC 6962/9162),
// - its inclusion proof up to the signed checkpoint's root (RFC 9162
//   2.1.3.2), interior nodes SHA-256(0x01 || left || right),
// - the checkpoint's Ed25519 signature (C2SP signed note) under the ledger
//   key shown on the page, where the browser's WebCrypto has Ed25519; it
//   says that Ed25519 is the only suite it checked, and that an SM2 line
//   on the checkpoint (国密, [crypto] signatures) was NOT checked here:
//   WebCrypto has no SM2,
// - the consistency of the current log with a pasted checkpoint (RFC 9162
//   2.1.4.2).
// Every text is set with textContent: nothing the server sends is HTML.
(function () {
  'use strict';

  function msg(key) {
    var el = document.querySelector('#msgs [data-key="' + key + '"]');
    return el ? el.textContent : key;
  }

  function b64(text) {
    var bin = atob(text.trim());
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }

  function concat(parts) {
    var n = 0;
    parts.forEach(function (p) { n += p.length; });
    var buf = new Uint8Array(n);
    var o = 0;
    parts.forEach(function (p) { buf.set(p, o); o += p.length; });
    return buf;
  }

  async function sha256(parts) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(parts)));
  }
  function leafHash(raw) { return sha256([Uint8Array.of(0), raw]); }
  function nodeHash(l, r) { return sha256([Uint8Array.of(1), l, r]); }

  function same(a, b) {
    if (!a || !b || a.length !== b.length) { return false; }
    var d = 0;
    for (var i = 0; i < a.length; i++) { d |= a[i] ^ b[i]; }
    return d === 0;
  }

  // RFC 9162 2.1.3.2: the root an inclusion proof leads to, or null.
  async function inclusionRoot(index, size, leaf, path) {
    var fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
    if (fn > sn) { return null; }
    for (var i = 0; i < path.length; i++) {
      var p = path[i];
      if (sn === 0n) { return null; }
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    return sn === 0n ? r : null;
  }

  // RFC 9162 2.1.4.2: whether `path` proves the tree (size1, root1) is a
  // prefix of (size2, root2).
  async function consistent(size1, root1, size2, root2, path) {
    if (size1 === size2) { return path.length === 0 && same(root1, root2); }
    if (size1 === 0 || size1 > size2) { return size1 === 0 && path.length === 0; }
    var proof = path.slice();
    var s1 = BigInt(size1);
    if ((s1 & (s1 - 1n)) === 0n) { proof.unshift(root1); }
    if (proof.length === 0) { return false; }
    var fn = s1 - 1n, sn = BigInt(size2) - 1n;
    while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
    var fr = proof[0], sr = proof[0];
    for (var i = 1; i < proof.length; i++) {
      var c = proof[i];
      if (sn === 0n) { return false; }
      if ((fn & 1n) === 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n; sn >>= 1n;
    }
    return sn === 0n && same(fr, root1) && same(sr, root2);
  }

  // A C2SP signed note holding a checkpoint: origin, size, root.
  function parseCheckpoint(text) {
    text = text.replace(/\r\n/g, '\n');
    var cut = text.indexOf('\n\n');
    if (cut < 0) { return null; }
    var body = text.slice(0, cut + 1);
    var lines = body.split('\n');
    if (lines.length < 4 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) { return null; }
    var root;
    try { root = b64(lines[2]); } catch (e) { return null; }
    if (root.length !== 32) { return null; }
    var sigs = text.slice(cut + 2).split('\n').filter(function (l) { return l.length > 0; })
      .map(function (l) {
        var m = /^\u2014 (\S+) (\S+)$/.exec(l);
        if (!m) { return null; }
        try { return { name: m[1], blob: b64(m[2]) }; } catch (e) { return null; }
      }).filter(function (s) { return s !== null; });
    return { origin: lines[0], size: Number(lines[1]), root: root, body: body, sigs: sigs };
  }

  // 'ok', 'bad' or 'unsupported'.
  async function checkSignature(cp, vkey) {
    // name+hash+key: the name has no '+' and the hash is hex, but the
    // key's base64 may hold '+' itself, so cut at the first two only.
    var cut1 = vkey.indexOf('+'), cut2 = cut1 < 0 ? -1 : vkey.indexOf('+', cut1 + 1);
    if (cut2 < 0) { return 'bad'; }
    var name = vkey.slice(0, cut1), hash = vkey.slice(cut1 + 1, cut2), keyBytes;
    try { keyBytes = b64(vkey.slice(cut2 + 1)); } catch (e) { return 'bad'; }
    if (keyBytes.length !== 33 || keyBytes[0] !== 1) { return 'bad'; }
    var sig = cp.sigs.find(function (s) {
      if (s.name !== name || s.blob.length !== 68) { return false; }
      var h = Array.prototype.map.call(s.blob.slice(0, 4), function (b) {
        return ('0' + b.toString(16)).slice(-2);
      }).join('');
      return h === hash;
    });
    if (!sig) { return 'bad'; }
    var key;
    try {
      key = await crypto.subtle.importKey('raw', keyBytes.slice(1), { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      return 'unsupported';
    }
    try {
      var ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, sig.blob.slice(4),
        new TextEncoder().encode(cp.body));
      return ok ? 'ok' : 'bad';
    } catch (e) {
      return 'unsupported';
    }
  }

  function say(el, text, state) {
    el.textContent = text;
    if (state !== undefined) { el.dataset.state = state; }
  }

  async function checkCustody(panel) {
    var verdict = document.getElementById('verdict');
    var sigOut = document.getElementById('signature-result');
    var list = document.getElementById('proof-results');
    var custody;
    try {
      var resp = await fetch(panel.dataset.custody, { credentials: 'same-origin' });
      if (!resp.ok) { throw new Error(String(resp.status)); }
      custody = await resp.json();
    } catch (e) {
      say(verdict, msg('verify-not-verified') + ': ' + msg('verify-fetch-failed'), 'failed');
      return;
    }
    var cp = parseCheckpoint(String(custody.checkpoint || ''));
    if (!cp) {
      say(verdict, msg('verify-not-verified') + ': ' + msg('verify-root-bad'), 'failed');
      return;
    }
    var sig = await checkSignature(cp, panel.dataset.vkey);
    say(sigOut, msg(sig === 'ok' ? 'verify-sig-ok' : sig === 'bad' ? 'verify-sig-bad' : 'verify-sig-unsupported'), sig);
    // Any line that is not a 4-byte key hash and a 64-byte Ed25519
    // signature (an SM2 line's DER signature is 70 to 72 bytes).
    var others = cp.sigs.filter(function (s) { return s.blob.length !== 68; }).length;
    var suitesOut = document.getElementById('suites-result');
    if (suitesOut) {
      say(suitesOut, msg('verify-suites-browser') + (others > 0 ? ' ' + msg('verify-sm2-not-in-browser') : ''),
        others > 0 ? 'partial' : 'ok');
    }
    var all = sig !== 'bad' && (custody.entries || []).length > 0;
    for (var i = 0; i < (custody.entries || []).length; i++) {
      var e = custody.entries[i];
      var ok = false, action = '';
      try {
        var raw = b64(e.raw);
        try { action = JSON.parse(new TextDecoder().decode(raw)).action || ''; } catch (x) { action = ''; }
        var path = (e.proof.hashes || []).map(b64);
        var root = await inclusionRoot(e.proof.index, e.proof.size, await leafHash(raw), path);
        ok = e.proof.index === e.seq && e.proof.size === cp.size && same(root, cp.root);
      } catch (x) {
        ok = false;
      }
      var li = document.createElement('li');
      li.className = ok ? 'ok' : 'bad';
      li.dataset.seq = String(e.seq);
      li.dataset.state = ok ? 'verified' : 'failed';
      li.textContent = '#' + e.seq + ' ' + action + ': ' + msg(ok ? 'verify-entry-ok' : 'verify-entry-bad');
      list.appendChild(li);
      all = all && ok;
    }
    say(verdict, msg(all ? 'verify-verified' : 'verify-not-verified'), all ? 'verified' : 'failed');
  }

  async function checkConsistency(button) {
    var out = document.getElementById('consistency-result');
    var old = parseCheckpoint(document.getElementById('old-checkpoint').value + '');
    if (!old) { say(out, msg('consistency-bad') + ' ' + msg('verify-root-bad'), 'failed'); return; }
    try {
      var cur = parseCheckpoint(await (await fetch('/v1/checkpoint')).text());
      if (!cur) { throw new Error('checkpoint'); }
      var sigOld = await checkSignature(old, button.dataset.vkey);
      var sigCur = await checkSignature(cur, button.dataset.vkey);
      if (sigOld === 'bad' || sigCur === 'bad') {
        say(out, msg('consistency-bad') + ' ' + msg('verify-sig-bad'), 'failed');
        return;
      }
      if (old.size === cur.size) {
        var eq = same(old.root, cur.root);
        say(out, msg(eq ? 'consistency-same' : 'consistency-bad'), eq ? 'verified' : 'failed');
        return;
      }
      if (old.size > cur.size) { say(out, msg('consistency-bad'), 'failed'); return; }
      var resp = await fetch('/v1/proof/consistency?from=' + old.size + '&to=' + cur.size);
      if (!resp.ok) { throw new Error(String(resp.status)); }
      var proof = await resp.json();
      var ok = await consistent(old.size, old.root, cur.size, cur.root, (proof.hashes || []).map(b64));
      say(out, msg(ok ? 'consistency-ok' : 'consistency-bad'), ok ? 'verified' : 'failed');
    } catch (e) {
      say(out, msg('consistency-bad') + ' ' + msg('verify-fetch-failed'), 'failed');
    }
  }

  // For a check by hand in the browser's console, and for the tests: any
  // note against any verifier key.
  window.CustosAudit = Object.freeze({
    parseCheckpoint: parseCheckpoint,
    checkSignature: checkSignature
  });

  function start() {
    var panel = document.getElementById('proof');
    if (panel) { checkCustody(panel); }
    var button = document.getElementById('check-consistency');
    if (button) { button.addEventListener('click', function () { checkConsistency(button); }); }
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
