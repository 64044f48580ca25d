// dtmd's admin page: lists transactions, shows one with its branches and timeline, and asks
// dtmd to retry it now or to force-stop it, all through the JSON API under /v1/ on the same
// port. Plain JavaScript, no library. Everything that comes from dtmd is put into the page as
// text (textContent), never as markup.
'use strict';

(function () {
  const TOKEN_KEY = 'dtmd-admin-token';
  const REFRESH_KEY = 'dtmd-admin-autorefresh';
  const REFRESH_MS = 2000;
  const TERMINAL = new Set(['SUCCEEDED', 'FAILED']);

  const $ = (id) => document.getElementById(id);

  // --- Rendering helpers: text only ---------------------------------------------------------

  // A new element with attributes (className, dataset entries as data-*) and children (strings
  // become text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'className') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else if (k === 'href' || k === 'title') e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  // "2026-01-02 15:04:05" in the browser's time zone.
  function localTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
        `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // "in 58 s", "3 min ago".
  function relative(iso) {
    const ms = new Date(iso).getTime() - Date.now();
    if (isNaN(ms)) return '';
    const s = Math.round(Math.abs(ms) / 1000);
    let text;
    if (s < 90) text = `${s} s`;
    else if (s < 90 * 60) text = `${Math.round(s / 60)} min`;
    else if (s < 36 * 3600) text = `${Math.round(s / 3600)} h`;
    else text = `${Math.round(s / 86400)} d`;
    return ms >= 0 ? `in ${text}` : `${text} ago`;
  }

  function timeCell(iso, withRelative) {
    if (!iso) return el('td', {className: 'muted', text: '—'});
    const text = withRelative ? `${localTime(iso)} (${relative(iso)})` : localTime(iso);
    return el('td', {className: 'time', title: iso, text});
  }

  function statusBadge(status) {
    const s = status || 'STATUS_UNSPECIFIED';
    return el('span', {className: `status status-${s}`, text: s});
  }

  // A branch payload (base64) as text when it is UTF-8, else as base64.
  function payloadText(b64) {
    if (!b64) return '(empty)';
    let bytes;
    try {
      bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    } catch (e) {
      return `base64: ${b64}`;
    }
    try {
      return new TextDecoder('utf-8', {fatal: true}).decode(bytes);
    } catch (e) {
      return `base64: ${b64}`;
    }
  }

  // --- Messages -----------------------------------------------------------------------------

  // Where the error shown came from: 'load' (cleared by the next good load) or 'action'
  // (stays until the next action or page).
  let errorSource = null;
  function showError(err, source) {
    errorSource = err ? (source || 'action') : null;
    const box = $('error');
    box.textContent = err ? describe(err) : '';
    box.hidden = !err;
  }

  function describe(err) {
    if (err && err.code && err.status) return `${err.code} (HTTP ${err.status}): ${err.message}`;
    if (err && err.code) return `${err.code}: ${err.message}`;
    return String(err && err.message ? err.message : err);
  }

  let noticeTimer = null;
  function showNotice(text) {
    const box = $('notice');
    box.textContent = text;
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  // --- The API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = {'Accept': 'application/json'};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers['Authorization'] = `Bearer ${token}`;
    const init = {method, headers, cache: 'no-store', credentials: 'same-origin'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'UNAVAILABLE', `dtmd did not answer (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : {};
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const code = data && data.code ? data.code : `HTTP ${res.status}`;
      const message = data && data.message ? data.message : (text || res.statusText);
      if (res.status === 401) showTokenForm(true);
      throw new ApiError(res.status, code, message);
    }
    if (data === null) throw new ApiError(res.status, 'INTERNAL', 'dtmd answered something else than JSON');
    return data;
  }

  // --- Token --------------------------------------------------------------------------------

  function showTokenForm(show) {
    $('token-form').hidden = !show;
    if (show) $('token').focus();
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    showTokenForm(false);
    refresh(true);
  });
  $('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    showNotice('Token forgotten.');
    refresh(true);
  });
  $('token-close').addEventListener('click', () => showTokenForm(false));
  $('token-button').addEventListener('click', () => showTokenForm($('token-form').hidden));

  // --- Routes (the part after #) ------------------------------------------------------------
  //   #/?status=..&trans_type=..&gid_prefix=..&created_after=..&created_before=..&page_size=..
  //      &page_token=..        the list
  //   #/tx/<gid>              one transaction

  function route() {
    const h = location.hash.replace(/^#/, '') || '/';
    if (h === '/' || h.startsWith('/?')) {
      return {view: 'list', params: new URLSearchParams(h.slice(2))};
    }
    const m = /^\/tx\/([^/?]+)$/.exec(h);
    if (m) {
      let gid;
      try {
        gid = decodeURIComponent(m[1]);
      } catch (e) {
        return {view: 'unknown', hash: location.hash};
      }
      return {view: 'txn', gid};
    }
    return {view: 'unknown', hash: location.hash};
  }

  let current = null;   // the route shown
  let lastShown = '';   // the JSON last rendered, so that an unchanged answer leaves the DOM alone
  let prevTokens = [];  // page tokens of the pages before this one (list view)
  let loading = false;

  function show(view) {
    $('list-view').hidden = view !== 'list';
    $('txn-view').hidden = view !== 'txn';
  }

  window.addEventListener('hashchange', () => {
    const open = $('force-stop-dialog');  // a force stop is about the page it opened on
    if (open && open.open) open.close();
    const before = current;
    current = route();
    if (current.view === 'list' && before && before.view === 'list') {
      // Paging keeps the stack; anything else starts over.
      const sameFilters = filterKey(before.params) === filterKey(current.params);
      if (!sameFilters) {
        prevTokens = [];
      } else if (prevTokens.length &&
                 prevTokens[prevTokens.length - 1] === (current.params.get('page_token') || '')) {
        prevTokens.pop();  // the browser's Back to the page before
      }
    } else {
      prevTokens = [];
    }
    lastShown = '';
    showError(null);
    render();
  });

  function render() {
    if (current.view === 'list') {
      show('list');
      document.title = 'dtmd: transactions';
      fillFilters(current.params);
    } else if (current.view === 'txn') {
      show('txn');
      document.title = `dtmd: ${current.gid}`;
      $('txn-gid').textContent = current.gid;
      $('fs-gid').textContent = current.gid;
    } else {
      show(null);
      document.title = 'dtmd: no such page';
      showError(new ApiError(404, 'NOT_FOUND', `no such page: ${current.hash}`), 'page');
      return;
    }
    refresh(true);
  }

  // --- The list -----------------------------------------------------------------------------

  const FILTERS = ['status', 'trans_type', 'gid_prefix', 'created_after', 'created_before', 'page_size'];

  function filterKey(params) {
    return FILTERS.map((k) => `${k}=${params.get(k) || ''}`).join('&');
  }

  // datetime-local value ("2026-01-02T15:04:05", the browser's zone) <-> RFC 3339 (UTC).
  function toRfc3339(local) {
    if (!local) return '';
    const d = new Date(local);
    return isNaN(d) ? local : d.toISOString();
  }
  function toLocalInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return '';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
        `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fillFilters(params) {
    $('f-status').value = params.get('status') || '';
    $('f-type').value = params.get('trans_type') || '';
    $('f-gid').value = params.get('gid_prefix') || '';
    $('f-after').value = toLocalInput(params.get('created_after'));
    $('f-before').value = toLocalInput(params.get('created_before'));
    const size = params.get('page_size') || '50';
    if (![...$('f-size').options].some((o) => o.value === size)) {
      $('f-size').appendChild(el('option', {text: size}));  // a size typed into the address
    }
    $('f-size').value = size;
  }

  // The filters as the form has them.
  function formParams() {
    const p = new URLSearchParams();
    const add = (k, v) => { if (v) p.set(k, v); };
    add('status', $('f-status').value);
    add('trans_type', $('f-type').value);
    add('gid_prefix', $('f-gid').value.trim());
    add('created_after', toRfc3339($('f-after').value));
    add('created_before', toRfc3339($('f-before').value));
    if ($('f-size').value !== '50') add('page_size', $('f-size').value);
    return p;
  }

  // The list's route for `params`' filters and the page `token`.
  function listHash(params, token) {
    const p = new URLSearchParams();
    for (const k of FILTERS) {
      if (params.get(k)) p.set(k, params.get(k));
    }
    if (token) p.set('page_token', token);
    const q = p.toString();
    return q ? `#/?${q}` : '#/';
  }

  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const h = listHash(formParams(), '');
    if (location.hash === h || (h === '#/' && location.hash === '')) refresh(true);
    else location.hash = h;
  });
  $('f-clear').addEventListener('click', () => {
    fillFilters(new URLSearchParams());
    location.hash = '#/';
  });
  $('page-first').addEventListener('click', () => {
    prevTokens = [];
    location.hash = listHash(current.params, '');
  });
  $('page-prev').addEventListener('click', () => {
    if (prevTokens.length === 0) return;
    const token = prevTokens.pop();
    location.hash = listHash(current.params, token);
  });
  $('page-next').addEventListener('click', () => {
    const next = $('page-next').dataset.token;
    if (!next) return;
    prevTokens.push(current.params.get('page_token') || '');
    location.hash = listHash(current.params, next);
  });

  async function loadList(params) {
    const q = new URLSearchParams();
    for (const k of [...FILTERS, 'page_token']) {
      if (params.get(k)) q.set(k, params.get(k));
    }
    const query = q.toString();
    const page = await api('GET', `/v1/transactions${query ? `?${query}` : ''}`);
    if (!current || current.params !== params) return;  // the filters changed meanwhile
    const text = JSON.stringify(page);
    if (text === lastShown) return;
    lastShown = text;
    renderList(page);
  }

  function renderList(page) {
    const body = $('list-body');
    clear(body);
    const txns = page.transactions || [];
    for (const t of txns) {
      body.appendChild(el('tr', {'data-gid': t.gid},
          el('td', {}, el('a', {href: `#/tx/${encodeURIComponent(t.gid)}`, className: 'gid', text: t.gid})),
          el('td', {text: (t.trans_type || '').toLowerCase()}),
          el('td', {}, statusBadge(t.status)),
          timeCell(t.create_time),
          timeCell(t.update_time),
          timeCell(t.next_retry_time, true),
          el('td', {className: 'reason', text: t.rollback_reason || ''})));
    }
    $('list-empty').hidden = txns.length > 0;
    const next = page.next_page_token || '';
    $('page-next').dataset.token = next;
    $('page-next').disabled = !next;
    $('page-prev').disabled = prevTokens.length === 0;
    $('page-first').disabled = !current.params.get('page_token');
    $('page-number').textContent = `page ${prevTokens.length + 1}`;
  }

  // --- One transaction ----------------------------------------------------------------------

  // A duration option as the JSON mapping writes it ("60s"); zero or unset: `none`.
  function durationText(d, none) {
    return !d || /^0(\.0+)?s$/.test(d) ? (none || '—') : d;
  }

  let shownTxn = null;

  async function loadTxn(gid) {
    const payloads = $('show-payloads').checked;
    const path = `/v1/transactions/${encodeURIComponent(gid)}${payloads ? '?payloads=true' : ''}`;
    const t = await api('GET', path);
    if (!current || current.view !== 'txn' || current.gid !== gid) return;
    const text = JSON.stringify(t) + (payloads ? '+p' : '');
    if (text === lastShown) {
      refreshRelativeTimes(t);
      return;
    }
    lastShown = text;
    renderTxn(t, payloads);
  }

  function refreshRelativeTimes(t) {
    // The next retry's "in N s" moves with the clock even when nothing else changed.
    const cell = $('txn-summary').querySelector('[data-field="next_retry_time"]');
    if (cell && t.next_retry_time) {
      cell.textContent = `${localTime(t.next_retry_time)} (${relative(t.next_retry_time)})`;
    }
  }

  function renderTxn(t, payloads) {
    shownTxn = t;
    const terminal = TERMINAL.has(t.status);
    const status = $('txn-status');
    status.textContent = t.status || '';
    status.className = `status status-${t.status}`;
    $('retry-now').disabled = terminal;
    $('force-stop').disabled = terminal;

    const summary = $('txn-summary');
    clear(summary);
    const o = t.options || {};
    const headers = Object.keys(o.branch_headers || {});
    const rows = [  // in pairs: the summary has two columns
      ['status', t.status],
      ['trans_type', (t.trans_type || '').toLowerCase()],
      ['create_time', t.create_time ? localTime(t.create_time) : '—'],
      ['creator', t.creator || '—'],
      ['update_time', t.update_time ? localTime(t.update_time) : '—'],
      ['finish_time', t.finish_time ? localTime(t.finish_time) : '—'],
      ['next_retry_time', t.next_retry_time ? `${localTime(t.next_retry_time)} (${relative(t.next_retry_time)})` : '—'],
      ['rollback_reason', t.rollback_reason || '—'],
      ['retry_interval', durationText(o.retry_interval)],
      ['max_retry_interval', durationText(o.max_retry_interval)],
      ['request_timeout', durationText(o.request_timeout)],
      ['timeout_to_fail', durationText(o.timeout_to_fail, 'none')],
      ['retry_limit', o.retry_limit ? String(o.retry_limit) : 'unlimited'],
      ['concurrent', o.concurrent ? 'yes' : 'no'],
      ['branch_headers', headers.length ? headers.join(', ') : '—'],
    ];
    if (t.query_prepared) rows.push(['query_prepared', t.query_prepared]);
    for (const [k, v] of rows) {
      summary.appendChild(el('dt', {text: k.replace(/_/g, ' ')}));
      summary.appendChild(el('dd', {'data-field': k, text: v}));
    }

    const head = $('branch-head');
    const hadPayloadColumn = head.querySelector('.payload-head');
    if (payloads && !hadPayloadColumn) head.appendChild(el('th', {className: 'payload-head', text: 'Payload'}));
    if (!payloads && hadPayloadColumn) head.removeChild(hadPayloadColumn);

    const body = $('branch-body');
    clear(body);
    for (const b of t.branches || []) {
      const row = el('tr', {'data-branch-id': b.branch_id, 'data-op': b.op},
          el('td', {className: 'branch-id', text: b.branch_id || ''}),
          el('td', {className: 'op', text: (b.op || '').toLowerCase()}),
          el('td', {}, statusBadge(b.status)),
          el('td', {className: 'attempts num', text: String(b.attempts || 0)}),
          el('td', {className: 'target', text: b.target || '(no-op)'}),
          el('td', {className: 'last-error', text: b.last_error || ''}),
          timeCell(b.finish_time));
      if (payloads) row.appendChild(el('td', {className: 'payload'}, el('pre', {text: payloadText(b.payload)})));
      body.appendChild(row);
    }
    if (!(t.branches || []).length) {
      body.appendChild(el('tr', {}, el('td', {colSpan: payloads ? 8 : 7, className: 'muted', text: 'No branches (yet).'})));
    }

    renderTimeline(t);
  }

  function renderTimeline(t) {
    const events = [];
    if (t.create_time) events.push({time: t.create_time, text: 'created'});
    for (const b of t.branches || []) {
      if (b.finish_time) {
        events.push({
          time: b.finish_time,
          text: `branch ${b.branch_id} ${(b.op || '').toLowerCase()} finished: ${b.status}` +
              (b.attempts ? `, after ${b.attempts} attempt(s)` : ''),
        });
      }
    }
    if (t.finish_time) {
      events.push({time: t.finish_time,
        text: `finished ${t.status}` + (t.rollback_reason ? `: ${t.rollback_reason}` : '')});
    } else if (t.rollback_reason) {
      events.push({time: t.update_time, text: `rolling back: ${t.rollback_reason}`});
    }
    if (t.update_time) events.push({time: t.update_time, text: 'last update'});
    if (t.next_retry_time) events.push({time: t.next_retry_time, text: 'next retry', future: true});
    events.sort((a, b) => new Date(a.time) - new Date(b.time));
    const list = $('timeline');
    clear(list);
    for (const e of events) {
      list.appendChild(el('li', {className: e.future ? 'future' : ''},
          el('time', {title: e.time, text: localTime(e.time)}), ' ', e.text,
          e.future ? ` (${relative(e.time)})` : ''));
    }
  }

  // --- Actions ------------------------------------------------------------------------------

  $('show-payloads').addEventListener('change', () => {
    lastShown = '';
    refresh(true);
  });

  $('retry-now').addEventListener('click', async () => {
    const gid = current.gid;
    $('retry-now').disabled = true;
    showError(null);
    try {
      await api('POST', `/v1/transactions/${encodeURIComponent(gid)}:retryNow`, {});
      showNotice(`Retry requested: the waiting branches of ${gid} are due now.`);
    } catch (e) {
      showError(e);
    } finally {
      $('retry-now').disabled = shownTxn ? TERMINAL.has(shownTxn.status) : false;
    }
    refresh(true);
  });

  const dialog = $('force-stop-dialog');
  let stopping = null;  // the gid the open dialog is about, fixed when it opened
  function dialogError(err) {
    $('fs-error').textContent = err ? describe(err) : '';
    $('fs-error').hidden = !err;
  }
  $('force-stop').addEventListener('click', () => {
    if (!current || current.view !== 'txn') return;
    stopping = current.gid;
    $('fs-reason').value = '';
    $('fs-confirm').disabled = true;
    dialogError(null);
    dialog.showModal();
    $('fs-reason').focus();
  });
  $('fs-reason').addEventListener('input', () => {
    $('fs-confirm').disabled = $('fs-reason').value.trim() === '';
  });
  $('fs-cancel').addEventListener('click', () => dialog.close());
  $('force-stop-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const reason = $('fs-reason').value.trim();
    if (!reason) return;
    const gid = stopping;
    if (!gid) return;
    $('fs-confirm').disabled = true;
    try {
      const payloads = $('show-payloads').checked;
      const t = await api('POST', `/v1/transactions/${encodeURIComponent(gid)}:forceStop` +
          (payloads ? '?payloads=true' : ''), {reason});
      dialog.close();
      showError(null);
      showNotice(`${gid} was force-stopped: ${t.status}.`);
      lastShown = '';
      if (current.view === 'txn' && current.gid === gid) renderTxn(t, payloads);
    } catch (e) {
      dialogError(e);
      $('fs-confirm').disabled = false;
    }
  });

  // --- Refreshing ---------------------------------------------------------------------------

  async function refresh(force) {
    if (!current || current.view === 'unknown') return;
    if (loading && !force) return;
    loading = true;
    const shown = current;
    try {
      if (shown.view === 'list') await loadList(shown.params);
      else await loadTxn(shown.gid);
      if (shown === current) {
        if (errorSource === 'load') showError(null);
        $('refreshed').textContent = `updated ${localTime(new Date().toISOString())}`;
      }
    } catch (e) {
      if (shown === current) showError(e, 'load');
    } finally {
      loading = false;
    }
  }

  const auto = $('auto-refresh');
  auto.checked = sessionStorage.getItem(REFRESH_KEY) !== 'off';
  auto.addEventListener('change', () => {
    sessionStorage.setItem(REFRESH_KEY, auto.checked ? 'on' : 'off');
    if (auto.checked) refresh(false);
  });
  setInterval(() => {
    if (auto.checked && !document.hidden && !dialog.open) refresh(false);
  }, REFRESH_MS);

  current = route();
  render();
})();
