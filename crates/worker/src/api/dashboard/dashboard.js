// The dashboard: list, detail, actions, entities, stuck instances and poison messages, all
// through the app's HTTP API. Every value from the API is rendered as text (textContent, SVG attributes),
// never parsed as markup.
'use strict';

const STATUSES = ['Running', 'Pending', 'Suspended', 'Completed', 'Failed', 'Terminated',
  'Canceled', 'ContinuedAsNew'];
const ENDED = ['Completed', 'Failed', 'Terminated', 'Canceled'];
const SVG = 'http://www.w3.org/2000/svg';
const CONTINUATION = 'x-ms-continuation-token';
/// What the API's tag filter parameters start with: `tag.team=data`.
const TAG_PARAM = 'tag.';
// The function key the page was opened with (Azure): every API call passes it on.
const KEY = new URLSearchParams(location.search).get('code');

let refreshTimer = null;

// ---- building blocks ----

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function say(text, error = false) {
  const message = document.getElementById('message');
  message.textContent = text;
  message.className = error ? 'error' : '';
}

/// A link to another view of this page, the key kept.
function pageUrl(query) {
  const url = new URL(location.pathname, location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  if (KEY) url.searchParams.set('code', KEY);
  return url.pathname + url.search;
}

function link(text, query) {
  return el('a', {
    href: pageUrl(query),
    onclick: (event) => { event.preventDefault(); go(query); },
  }, text);
}

function go(query, replace = false) {
  const url = pageUrl(query);
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

async function api(method, path, { query = {}, body, headers = {} } = {}) {
  const url = new URL('/api/' + path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    // A tag filter without a value asks for the key only: it is sent empty.
    if (value !== '' || name.startsWith(TAG_PARAM)) url.searchParams.set(name, value);
  }
  if (KEY) url.searchParams.set('code', KEY);
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = body;
    init.headers['content-type'] = 'application/json';
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: response.status, ok: response.ok, headers: response.headers, data };
}

function problem(answer) {
  const detail = answer.data && answer.data.error ? answer.data.error : JSON.stringify(answer.data);
  return `${answer.status}: ${detail}`;
}

function instancePath(id) {
  return 'instances/' + encodeURIComponent(id);
}

function formatJson(value) {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

function formatTime(text) {
  if (!text) return '';
  const time = new Date(text);
  return isNaN(time) ? text : time.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function formatDuration(ms) {
  if (!(ms >= 0)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

function statusCell(status) {
  return el('span', { class: `status status-${status}` }, status);
}

/// An instance's tags as `key=value` pairs, each its own element.
function tagList(tags) {
  return Object.entries(tags || {}).map(([key, value]) => el('span', { class: 'tag' }, `${key}=${value}`));
}

/// Asks in the page's own dialog; resolves true when confirmed.
function confirmAction(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    const yes = document.getElementById('confirm-yes');
    const no = document.getElementById('confirm-no');
    const done = (answer) => {
      yes.onclick = null;
      no.onclick = null;
      dialog.oncancel = null;
      dialog.close();
      resolve(answer);
    };
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
    // Escape closes the dialog: that is a no.
    dialog.oncancel = () => done(false);
    dialog.showModal();
  });
}

// ---- the instance list ----

function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  const tag = params.get('tag') || '';
  return {
    status: (params.get('status') || '').split(',').filter((s) => STATUSES.includes(s)),
    name: params.get('name') || '',
    prefix: params.get('prefix') || '',
    from: params.get('from') || '',
    to: params.get('to') || '',
    version: params.get('version') || '',
    tag,
    tags: parseTagFilter(tag),
    refresh: params.get('refresh') || '0',
  };
}

/// The tag filter as typed, `team, env=prod`: comma-separated, each a key (any instance that
/// has it) or key=value. Returns `{ pairs }` of [key, value], the value empty for a key alone,
/// or `{ problem }`.
function parseTagFilter(text) {
  const pairs = new Map();
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const split = part.indexOf('=');
    const key = (split < 0 ? part : part.slice(0, split)).trim();
    if (!key) return { problem: `The tag filter '${part}' names no key: use key or key=value.` };
    if (pairs.has(key)) return { problem: `The tag filter names '${key}' twice.` };
    pairs.set(key, split < 0 ? '' : part.slice(split + 1).trim());
  }
  return { pairs: [...pairs] };
}

function apiFilter(filters) {
  const tags = filters.tags.pairs || [];
  return {
    runtimeStatus: filters.status.join(','),
    instanceIdPrefix: filters.prefix,
    name: filters.name,
    version: filters.version,
    createdTimeFrom: filters.from ? new Date(filters.from).toISOString() : '',
    createdTimeTo: filters.to ? new Date(filters.to).toISOString() : '',
    ...Object.fromEntries(tags.map(([key, value]) => [TAG_PARAM + key, value])),
  };
}

function filterForm(filters) {
  const statusBoxes = STATUSES.map((status) => el('label', {},
    el('input', { type: 'checkbox', name: 'status', value: status, checked: filters.status.includes(status) }),
    status));
  const refresh = el('select', { name: 'refresh' },
    ['0', '5', '10', '30'].map((s) => el('option', { value: s, selected: s === filters.refresh },
      s === '0' ? 'off' : `every ${s} s`)));
  const form = el('form', { class: 'filters', id: 'filters' },
    el('fieldset', {}, el('legend', {}, 'Status'), statusBoxes),
    el('label', {}, 'Name', el('input', { name: 'name', value: filters.name })),
    el('label', {}, 'Id prefix', el('input', { name: 'prefix', value: filters.prefix })),
    el('label', {}, 'Version', el('input', { name: 'version', value: filters.version, size: 8 })),
    el('label', {}, 'Tags', el('input', {
      name: 'tag', value: filters.tag, placeholder: 'team, env=prod',
      title: 'Comma-separated; each a key (instances that have the tag) or key=value; all must match',
    })),
    el('label', {}, 'Created from', el('input', { type: 'datetime-local', name: 'from', value: filters.from, step: 1 })),
    el('label', {}, 'Created to', el('input', { type: 'datetime-local', name: 'to', value: filters.to, step: 1 })),
    el('label', {}, 'Auto-refresh', refresh),
    el('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go({
      view: 'list',
      status: data.getAll('status').join(','),
      name: data.get('name'),
      prefix: data.get('prefix'),
      version: data.get('version').trim(),
      tag: data.get('tag').trim(),
      from: data.get('from'),
      to: data.get('to'),
      refresh: data.get('refresh') === '0' ? '' : data.get('refresh'),
    });
  });
  return form;
}

const HISTOGRAM_LIMIT = 5000;
const HISTOGRAM_EVERY_MS = 60 * 1000;
const TABLE_PAGE = 50;
const TABLE_READS = 20;

/// The instances the filter matches from `token` on, API pages of `top` read until `limit` are
/// found or none are left, with the token to go on from. A tag or name filter narrows each API
/// page after it is read, so one may hold fewer than `top`, even none, while more follow; at
/// most `reads` pages are read, so a filter that matches little never walks the whole table.
async function readMatching(filters, { limit, top, token = '', reads = Infinity }) {
  const found = [];
  let read = 0;
  do {
    read += 1;
    const answer = await api('GET', 'instances', {
      query: { ...apiFilter(filters), top, showInput: 'false' },
      headers: token ? { [CONTINUATION]: token } : {},
    });
    if (!answer.ok) throw new Error(problem(answer));
    found.push(...answer.data);
    token = answer.headers.get(CONTINUATION) || '';
  } while (token && found.length < limit && read < reads);
  return { found, next: token };
}

/// Every instance the filter matches, up to `limit`.
async function allMatching(filters, limit) {
  return (await readMatching(filters, { limit, top: 1000 })).found;
}

async function renderList(main) {
  const filters = filtersFromUrl();
  main.append(filterForm(filters));
  if (filters.tags.problem) {
    say(filters.tags.problem, true);
    return;
  }
  const histogram = el('div', { id: 'histogram' });
  const table = el('div', { id: 'instances' });
  const pager = el('div', { class: 'pager' });
  const purge = el('button', { type: 'button', class: 'danger', id: 'bulk-purge' }, 'Purge ended instances matching the filter…');
  purge.addEventListener('click', () => bulkPurge(filters));
  main.append(histogram, el('div', { class: 'actions' }, purge), pager, table);

  // Pages of the table's size, read on until they fill it, up to TABLE_READS of them; the rest
  // is behind "Next".
  const showPage = paged(table, pager, (token) => readMatching(filters, { limit: TABLE_PAGE, top: TABLE_PAGE, token, reads: TABLE_READS }), instanceTable);
  // The histogram reads up to HISTOGRAM_LIMIT instances: an auto-refresh redraws it at most
  // every HISTOGRAM_EVERY_MS, however often the page of the table refreshes.
  let drawn = 0;
  const refresh = async () => {
    await showPage();
    if (Date.now() - drawn < HISTOGRAM_EVERY_MS) return;
    drawn = Date.now();
    try {
      histogram.replaceChildren(startsHistogram(await allMatching(filters, HISTOGRAM_LIMIT), filters));
    } catch (error) {
      say(String(error), true);
    }
  };
  await refresh();
  const seconds = Number(filters.refresh);
  if (seconds > 0) refreshTimer = setInterval(refresh, seconds * 1000);
}

/// Shows `table` a page at a time, with Previous and Next in `pager`: `read(token)` resolves to
/// `{ found, next }` (a page and the token of the one after), `draw(found)` to the table. The
/// returned function shows the current page again.
function paged(table, pager, read, draw) {
  // The tokens of the pages before this one, to page back.
  const tokens = [''];
  const showPage = async () => {
    let page;
    try {
      page = await read(tokens[tokens.length - 1]);
    } catch (error) {
      say(String(error), true);
      return;
    }
    const { found, next } = page;
    table.replaceChildren(draw(found));
    const previous = el('button', { type: 'button', disabled: tokens.length === 1 }, '‹ Previous');
    previous.addEventListener('click', () => { tokens.pop(); showPage(); });
    const following = el('button', { type: 'button', disabled: !next, id: 'next-page' }, 'Next ›');
    following.addEventListener('click', () => { tokens.push(next); showPage(); });
    pager.replaceChildren(previous, `page ${tokens.length}, ${found.length} shown`, following);
  };
  return showPage;
}

function instanceTable(instances) {
  const rows = instances.map((instance) => el('tr', {},
    el('td', {}, link(instance.instanceId, { view: 'instance', id: instance.instanceId })),
    el('td', {}, instance.name),
    el('td', {}, statusCell(instance.runtimeStatus)),
    el('td', {}, instance.version || ''),
    el('td', { class: 'tags' }, tagList(instance.tags)),
    el('td', {}, formatTime(instance.createdTime)),
    el('td', {}, formatTime(instance.lastUpdatedTime)),
    el('td', { class: 'json' }, instance.customStatus === null ? '' : JSON.stringify(instance.customStatus))));
  return el('table', {},
    el('thead', {}, el('tr', {}, ['Id', 'Name', 'Status', 'Version', 'Tags', 'Created', 'Last updated', 'Custom status']
      .map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 8 }, 'No instance matches.'))));
}

/// Starts per time bucket, stacked by status, over the filter's range (or the starts' own).
function startsHistogram(instances, filters) {
  const times = instances.map((i) => new Date(i.createdTime).getTime()).filter((t) => !isNaN(t));
  const width = 900, height = 160, top = 20, bottom = 30, buckets = 40;
  const chart = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, id: 'starts-histogram', role: 'img' });
  chart.append(svg('text', { x: 4, y: 14 }, `Starts by status: ${instances.length} instances`));
  if (!times.length) return chart;
  const start = filters.from ? new Date(filters.from).getTime() : Math.min(...times);
  const end = Math.max(filters.to ? new Date(filters.to).getTime() : Math.max(...times), start + 1000);
  const span = (end - start) / buckets;
  const counts = Array.from({ length: buckets }, () => ({}));
  for (const instance of instances) {
    const t = new Date(instance.createdTime).getTime();
    const index = Math.min(buckets - 1, Math.max(0, Math.floor((t - start) / span)));
    counts[index][instance.runtimeStatus] = (counts[index][instance.runtimeStatus] || 0) + 1;
  }
  const most = Math.max(...counts.map((c) => Object.values(c).reduce((a, b) => a + b, 0)));
  const barWidth = width / buckets;
  const scale = (height - top - bottom) / most;
  counts.forEach((count, index) => {
    let y = height - bottom;
    for (const status of STATUSES) {
      if (!count[status]) continue;
      const h = count[status] * scale;
      y -= h;
      const bar = svg('rect', { x: index * barWidth + 1, y, width: barWidth - 2, height: h, class: `fill-${status}` });
      bar.append(svg('title', {}, `${count[status]} ${status}`));
      chart.append(bar);
    }
  });
  chart.append(svg('text', { x: 4, y: height - 10 }, formatTime(new Date(start).toISOString())));
  chart.append(svg('text', { x: width - 4, y: height - 10, 'text-anchor': 'end' }, formatTime(new Date(end).toISOString())));
  return chart;
}

async function bulkPurge(filters) {
  let matching;
  try {
    matching = (await allMatching(filters, 100000)).filter((i) => ENDED.includes(i.runtimeStatus));
  } catch (error) {
    say(String(error), true);
    return;
  }
  if (!matching.length) {
    say('No ended instance matches the filter: nothing to purge.');
    return;
  }
  if (!await confirmAction(`Purge ${matching.length} ended instances matching the filter? This cannot be undone.`)) return;
  let deleted = 0;
  const failures = [];
  for (const instance of matching) {
    const answer = await api('DELETE', instancePath(instance.instanceId));
    if (answer.ok) deleted += 1;
    else failures.push(`${instance.instanceId}: ${problem(answer)}`);
  }
  say(`Purged ${deleted} instances.` + (failures.length ? ` Failed: ${failures.join('; ')}` : ''), failures.length > 0);
  render(false);
}

// ---- one instance ----

/// Spans of work from the history rows the API serves (their result rows carry the scheduled
/// time), open ones running until now.
function timelineSpans(rows, now) {
  const spans = [];
  // The served rows leave out timer ids (as Durable Functions' do): timers are paired by their
  // due time, the n-th created with the n-th fired, so two timers due at once pair one to one.
  const fired = new Map();
  for (const row of rows) {
    if (row.EventType === 'TimerFired') fired.set(row.FireAt, [...(fired.get(row.FireAt) || []), row.Timestamp]);
  }
  let previous = null;
  for (const row of rows) {
    const at = new Date(row.Timestamp).getTime();
    switch (row.EventType) {
      case 'TaskCompleted':
      case 'TaskFailed':
        spans.push({ kind: 'activity', label: row.FunctionName, start: new Date(row.ScheduledTime).getTime(), end: at, failed: row.EventType === 'TaskFailed' });
        break;
      case 'TaskScheduled':
        spans.push({ kind: 'activity', label: row.Name, start: at, end: now, open: true });
        break;
      case 'SubOrchestrationInstanceCompleted':
      case 'SubOrchestrationInstanceFailed':
        spans.push({ kind: 'suborchestration', label: row.FunctionName, start: new Date(row.ScheduledTime).getTime(), end: at, failed: row.EventType.endsWith('Failed'), child: row.InstanceId });
        break;
      case 'SubOrchestrationInstanceCreated':
        spans.push({ kind: 'suborchestration', label: row.Name, start: at, end: now, open: true, child: row.InstanceId });
        break;
      case 'TimerCreated': {
        const firing = (fired.get(row.FireAt) || []).shift();
        const end = new Date(firing === undefined ? row.FireAt : firing).getTime();
        spans.push({ kind: 'timer', label: `timer until ${formatTime(row.FireAt)}`, start: at, end, open: firing === undefined });
        break;
      }
      case 'EventRaised':
        // The wait began at the turn before the event came at the latest.
        spans.push({ kind: 'event', label: `event ${row.Name}`, start: previous === null ? at : previous, end: at });
        break;
      default:
    }
    if (!isNaN(at)) previous = at;
  }
  return spans.filter((s) => !isNaN(s.start) && !isNaN(s.end));
}

function gantt(spans) {
  const rowHeight = 22, labelWidth = 260, width = 900;
  const height = spans.length * rowHeight + 30;
  const chart = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, id: 'timeline', role: 'img' });
  if (!spans.length) {
    chart.append(svg('text', { x: 4, y: 16 }, 'No activity, timer, sub-orchestration or event yet.'));
    return chart;
  }
  const start = Math.min(...spans.map((s) => s.start));
  const end = Math.max(...spans.map((s) => s.end), start + 1);
  const scale = (width - labelWidth - 90) / (end - start);
  spans.forEach((span, index) => {
    const y = index * rowHeight + 4;
    const group = svg('g', { class: 'span', 'data-kind': span.kind });
    group.append(svg('text', { x: 4, y: y + 14 }, `${span.kind}: ${span.label || ''}`.slice(0, 40)));
    const x = labelWidth + (span.start - start) * scale;
    const w = Math.max(2, (span.end - span.start) * scale);
    const bar = svg('rect', { x, y, width: w, height: rowHeight - 6, class: span.failed ? 'bar-failed' : `bar-${span.kind}` });
    bar.append(svg('title', {}, `${span.label || span.kind}: ${formatDuration(span.end - span.start)}${span.open ? ' (so far)' : ''}`));
    group.append(bar);
    group.append(svg('text', { x: x + w + 4, y: y + 14 }, formatDuration(span.end - span.start) + (span.open ? '…' : '')));
    chart.append(group);
  });
  chart.append(svg('text', { x: labelWidth, y: height - 6 }, formatTime(new Date(start).toISOString())));
  return chart;
}

/// Each failure with the failures that caused it, outermost first.
function failureChain(details) {
  const chain = [];
  for (let failure = details; failure; failure = failure.InnerFailure) {
    chain.push(el('div', { class: 'failure' },
      el('strong', {}, failure.ErrorType || 'Error'), ': ', failure.ErrorMessage || '',
      failure.StackTrace ? el('pre', {}, failure.StackTrace) : null));
  }
  return chain;
}

function historyTable(rows) {
  const columns = ['Timestamp', 'EventType', 'FunctionName', 'Name', 'ScheduledTime', 'FireAt', 'InstanceId', 'Result', 'Reason', 'Details'];
  return el('table', { id: 'history' },
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', {}, c)))),
    el('tbody', {}, rows.map((row) => el('tr', {}, columns.map((column) => {
      const value = row[column];
      if (value === undefined || value === null) return el('td', {});
      if (column === 'InstanceId') return el('td', {}, link(value, { view: 'instance', id: value }));
      if (column.endsWith('Time') || column === 'Timestamp' || column === 'FireAt') return el('td', {}, formatTime(value));
      return el('td', { class: 'json' }, typeof value === 'string' ? value : JSON.stringify(value));
    })))));
}

function actionButtons(id, status) {
  const act = (label, question, call, enabled = true) => {
    const button = el('button', { type: 'button', 'data-action': label.toLowerCase(), disabled: !enabled }, label);
    button.addEventListener('click', async () => {
      if (!await confirmAction(question)) return;
      const answer = await call();
      if (answer.ok) say(`${label}: done (${answer.status}).`);
      else say(`${label} failed: ${problem(answer)}`, true);
      if (answer.ok && label === 'Purge') go({ view: 'list' });
      // A restart under a new id answers with that id: show the new run.
      else if (answer.ok && label === 'Restart' && answer.data && answer.data.id) go({ view: 'instance', id: answer.data.id });
      else render(false);
    });
    return button;
  };
  const reason = { reason: 'from the dashboard' };
  const running = !ENDED.includes(status);
  const eventName = el('input', { id: 'event-name', placeholder: 'event name' });
  const eventBody = el('textarea', { id: 'event-body', rows: 2, cols: 40, placeholder: 'JSON body' }, 'null');
  const raise = el('button', { type: 'button', 'data-action': 'raise', disabled: !running }, 'Raise event');
  raise.addEventListener('click', async () => {
    const name = eventName.value.trim();
    let body;
    try {
      body = JSON.stringify(JSON.parse(eventBody.value));
    } catch (error) {
      say(`The event body is not JSON: ${error.message}`, true);
      return;
    }
    if (!name) {
      say('Name the event to raise.', true);
      return;
    }
    if (!await confirmAction(`Raise event '${name}' on ${id}?`)) return;
    const answer = await api('POST', `${instancePath(id)}/raiseEvent/${encodeURIComponent(name)}`, { body });
    if (answer.ok) say(`Raised '${name}' (${answer.status}).`);
    else say(`Raise event failed: ${problem(answer)}`, true);
    render(false);
  });
  return el('div', {},
    el('div', { class: 'actions' },
      act('Terminate', `Terminate ${id}?`, () => api('POST', `${instancePath(id)}/terminate`, { query: reason }), running),
      act('Suspend', `Suspend ${id}?`, () => api('POST', `${instancePath(id)}/suspend`, { query: reason }), status === 'Running'),
      act('Resume', `Resume ${id}?`, () => api('POST', `${instancePath(id)}/resume`, { query: reason }), status === 'Suspended'),
      act('Rewind', `Rewind ${id} to re-run what it failed on?`, () => api('POST', `${instancePath(id)}/rewind`, { query: reason }), status === 'Failed'),
      act('Restart', `Restart ${id} with its input?`, () => api('POST', `${instancePath(id)}/restart`)),
      act('Purge', `Purge ${id} and its history? This cannot be undone.`, () => api('DELETE', instancePath(id)), !running)),
    el('div', { class: 'actions' }, eventName, eventBody, raise));
}

async function renderInstance(main, id) {
  if (entityOf(id)) {
    await renderEntity(main, id);
    return;
  }
  const answer = await api('GET', instancePath(id), { query: { showInput: true, showHistory: true, showHistoryOutput: true } });
  if (!answer.ok && answer.status !== 202) {
    main.append(el('p', {}, `Instance ${id}: ${problem(answer)}`));
    return;
  }
  const instance = answer.data;
  const rows = instance.historyEvents || [];
  const started = rows.find((row) => row.EventType === 'ExecutionStarted');
  const children = [...new Set(rows.map((row) => row.InstanceId).filter(Boolean))];
  const failures = rows.filter((row) => row.FailureDetails);
  const historyBytes = new TextEncoder().encode(JSON.stringify(rows)).length;
  const field = (name, value) => [el('dt', {}, name), el('dd', {}, value)];
  main.append(...[
    el('h2', {}, instance.name, ' ', el('span', { id: 'instance-id' }, instance.instanceId)),
    el('dl', { class: 'fields' },
      field('Status', statusCell(instance.runtimeStatus)),
      field('Version', instance.version || el('em', {}, 'none')),
      field('Tags', instance.tags ? tagList(instance.tags) : el('em', {}, 'none')),
      field('Created', formatTime(instance.createdTime)),
      field('Last updated', formatTime(instance.lastUpdatedTime)),
      field('History', `${rows.length} rows, ${(historyBytes / 1024).toFixed(1)} KiB as served`),
      field('Storage requests', instance.storageRequests ? String(instance.storageRequests) : 'not counted'),
      instance.poisonMessages ? field('Poison messages', link(String(instance.poisonMessages), { view: 'poison', instance: instance.instanceId })) : [],
      started && started.ParentInstanceId ? field('Parent', link(started.ParentInstanceId, { view: 'instance', id: started.ParentInstanceId })) : [],
      children.length ? field('Children', children.flatMap((child) => [link(child, { view: 'instance', id: child }), ' '])) : []),
    actionButtons(instance.instanceId, instance.runtimeStatus),
    failures.length ? el('div', { class: 'section', id: 'failures' }, el('h3', {}, 'Failures'),
      failures.map((row) => el('div', {}, el('p', {}, `${row.EventType} ${row.FunctionName || ''}`), failureChain(row.FailureDetails)))) : null,
    el('div', { class: 'section' }, el('h3', {}, 'Timeline'), gantt(timelineSpans(rows, Date.now()))),
    el('div', { class: 'section' }, el('h3', {}, 'Input'), el('pre', { id: 'input' }, formatJson(instance.input))),
    el('div', { class: 'section' }, el('h3', {}, 'Output'), el('pre', { id: 'output' }, formatJson(instance.output))),
    el('div', { class: 'section' }, el('h3', {}, 'Custom status'), el('pre', { id: 'custom-status' }, formatJson(instance.customStatus))),
    el('div', { class: 'section' }, el('h3', {}, 'History'), historyTable(rows)),
  ].filter(Boolean));
}

// ---- entities ----

/// The entity an instance id `@name@key` stands for, or null for an orchestration's id.
function entityOf(id) {
  const at = id.indexOf('@', 1);
  if (!id.startsWith('@') || at < 2 || at === id.length - 1) return null;
  return { name: id.slice(1, at), key: id.slice(at + 1) };
}

function entityPath(name, key) {
  return `entities/${encodeURIComponent(name)}` + (key === undefined ? '' : `/${encodeURIComponent(key)}`);
}

/// An entity: its state as it is now (it keeps no history), and a form to signal an operation.
async function renderEntity(main, id) {
  const { name, key } = entityOf(id);
  const answer = await api('GET', instancePath(id), { query: { showInput: true } });
  if (!answer.ok && answer.status !== 202) {
    main.append(el('p', {}, `Entity ${id}: ${problem(answer)}`));
    return;
  }
  const entity = answer.data;
  const field = (label, value) => [el('dt', {}, label), el('dd', {}, value)];
  const operation = el('input', { id: 'entity-op', placeholder: 'operation' });
  const input = el('textarea', { id: 'entity-input', rows: 2, cols: 40, placeholder: 'JSON input (empty: none)' });
  const signal = el('button', { type: 'button', 'data-action': 'signal' }, 'Signal');
  signal.addEventListener('click', async () => {
    const op = operation.value.trim();
    const body = input.value.trim();
    if (!op) {
      say('Name the operation to signal.', true);
      return;
    }
    try {
      if (body) JSON.parse(body);
    } catch (error) {
      say(`The input is not JSON: ${error.message}`, true);
      return;
    }
    if (!await confirmAction(`Signal '${op}' to ${id}?`)) return;
    const sent = await api('POST', entityPath(name, key), { query: { op }, body: body || undefined });
    if (sent.ok) say(`Signalled '${op}' (${sent.status}).`);
    else say(`Signal failed: ${problem(sent)}`, true);
  });
  main.append(
    el('h2', {}, 'Entity ', el('span', { id: 'instance-id' }, id)),
    el('dl', { class: 'fields' },
      field('Entity', link(name, { view: 'entities', entity: name })),
      field('Key', key),
      field('Created', formatTime(entity.createdTime)),
      field('Last operation', formatTime(entity.lastUpdatedTime))),
    el('div', { class: 'actions' }, operation, input, signal),
    el('div', { class: 'section' }, el('h3', {}, 'State'),
      entity.input === null ? el('p', { id: 'entity-state' }, el('em', {}, 'No state (never set, or deleted).'))
        : el('pre', { id: 'entity-state' }, formatJson(entity.input))));
}

/// Entities: those of one entity function (`entity=` in the URL) with their state and what
/// their scheduler knows, or, without a name, every entity instance (ids starting with '@').
async function renderEntities(main) {
  const name = new URLSearchParams(location.search).get('entity') || '';
  const form = el('form', { class: 'filters', id: 'entity-filter' },
    el('label', {}, 'Entity name', el('input', { name: 'entity', value: name })),
    el('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go({ view: 'entities', entity: new FormData(form).get('entity').trim() });
  });
  const table = el('div', { id: 'entities' });
  const pager = el('div', { class: 'pager' });
  main.append(form, pager, table);
  const read = async (path, query, token) => {
    const answer = await api('GET', path, { query: { ...query, top: TABLE_PAGE }, headers: token ? { [CONTINUATION]: token } : {} });
    if (!answer.ok) throw new Error(problem(answer));
    return { found: answer.data, next: answer.headers.get(CONTINUATION) || '' };
  };
  const entityLink = (entity) => link(entity.key, { view: 'instance', id: `@${entity.name}@${entity.key}` });
  const showPage = name
    ? paged(table, pager, (token) => read(entityPath(name), {}, token), (found) => el('table', {},
      el('thead', {}, el('tr', {}, ['Key', 'State', 'Operations', 'Last operation', 'Locked by', 'Waiting'].map((h) => el('th', {}, h)))),
      el('tbody', {}, found.length ? found.map((e) => el('tr', {},
        el('td', {}, entityLink(e.entityId)),
        el('td', { class: 'json' }, JSON.stringify(e.state)),
        el('td', {}, String(e.operations)),
        el('td', {}, formatTime(e.lastOperationTime)),
        el('td', {}, e.lockedBy ? link(e.lockedBy, { view: 'instance', id: e.lockedBy }) : ''),
        el('td', {}, String(e.waiting))))
        : el('tr', {}, el('td', { colspan: 6 }, `No ${name} entity has state.`)))))
    : paged(table, pager, (token) => read('instances', { instanceIdPrefix: '@', showInput: 'false' }, token), (found) => el('table', {},
      el('thead', {}, el('tr', {}, ['Entity', 'Key', 'Created'].map((h) => el('th', {}, h)))),
      el('tbody', {}, found.length ? found.map((i) => {
        const entity = entityOf(i.instanceId);
        return el('tr', {},
          el('td', {}, link(entity.name, { view: 'entities', entity: entity.name })),
          el('td', {}, entityLink(entity)),
          el('td', {}, formatTime(i.createdTime)));
      }) : el('tr', {}, el('td', { colspan: 3 }, 'No entities.')))));
  await showPage();
}

// ---- stuck instances ----

async function renderStuck(main) {
  const params = new URLSearchParams(location.search);
  const minutes = Number(params.get('minutes') || 5);
  main.append(el('p', {}, `Pending and Running instances unchanged for ${minutes} minutes or more that look stuck: `
    + 'a start never processed, a summary that disagrees with the state, or Running with nothing open '
    + '(no activity, timer or sub-orchestration: it waits for an event, or for nothing).'));
  const answer = await api('GET', 'stuck', { query: { idleSeconds: Math.round(minutes * 60), top: 200 } });
  if (!answer.ok) {
    say(problem(answer), true);
    return;
  }
  const instances = answer.data.filter((i) => i.reason !== 'waitingForStart');
  const waiting = answer.data.filter((i) => i.reason === 'waitingForStart');
  main.append(el('table', { id: 'stuck' },
    el('thead', {}, el('tr', {}, ['Id', 'Name', 'Status', 'Last updated', 'Why'].map((h) => el('th', {}, h)))),
    el('tbody', {}, instances.length ? instances.map((i) => el('tr', { 'data-reason': i.reason },
      el('td', {}, link(i.instanceId, { view: 'instance', id: i.instanceId })),
      el('td', {}, i.name), el('td', {}, statusCell(i.runtimeStatus)),
      el('td', {}, formatTime(i.lastUpdatedTime)), el('td', {}, i.description)))
      : el('tr', {}, el('td', { colspan: 5 }, 'None.')))));
  main.append(el('h3', {}, 'Messages waiting for their instance\'s start'),
    el('p', {}, `Messages that have waited ${minutes} minutes or more for an instance that does not exist yet `
      + '(or whose restart has not been processed): parked as poison messages if the start never comes.'),
    el('table', { id: 'waiting' },
      el('thead', {}, el('tr', {}, ['Instance', 'Message', 'Queue', 'Sent', 'Waited', 'Parked from'].map((h) => el('th', {}, h)))),
      el('tbody', {}, waiting.length ? waiting.map((w) => el('tr', { 'data-message': w.messageId },
        el('td', {}, link(w.instanceId, { view: 'instance', id: w.instanceId })),
        el('td', {}, w.eventName === undefined ? w.eventType : `${w.eventType} '${w.eventName}'`),
        el('td', {}, w.queue), el('td', {}, formatTime(w.sentTime)),
        el('td', {}, `${w.waitedSeconds} s`), el('td', {}, formatTime(w.parksAt))))
        : el('tr', {}, el('td', { colspan: 6 }, 'None.')))));
}

// ---- poison messages ----

async function renderPoison(main) {
  const instance = new URLSearchParams(location.search).get('instance') || '';
  const answer = await api('GET', 'poisonMessages', { query: { instanceId: instance, top: 100 } });
  if (!answer.ok) {
    say(problem(answer), true);
    return;
  }
  const act = (label, question, call, action) => {
    const button = el('button', { type: 'button', 'data-action': action }, label);
    button.addEventListener('click', async () => {
      if (!await confirmAction(question)) return;
      const result = await call();
      if (result.ok) say(`${label}: done.`);
      else say(`${label} failed: ${problem(result)}`, true);
      render(false);
    });
    return button;
  };
  const path = (id) => 'poisonMessages/' + encodeURIComponent(id);
  main.append(el('table', { id: 'poison' },
    el('thead', {}, el('tr', {}, ['Id', 'Instance', 'Queue', 'Reason', 'Deliveries', 'Parked', 'Message', ''].map((h) => el('th', {}, h)))),
    el('tbody', {}, answer.data.length ? answer.data.map((p) => el('tr', { 'data-id': p.id },
      el('td', {}, p.id),
      el('td', {}, p.instanceId ? link(p.instanceId, { view: 'instance', id: p.instanceId }) : ''),
      el('td', {}, p.queue), el('td', {}, p.reason), el('td', {}, String(p.attempts)),
      el('td', {}, formatTime(p.parkedAt)),
      el('td', { class: 'json' }, (p.text !== undefined ? p.text : JSON.stringify(p.message)).slice(0, 300)),
      el('td', {},
        act('Requeue', `Send message ${p.id} again?`, () => api('POST', `${path(p.id)}/requeue`), 'requeue'),
        act('Discard', `Discard message ${p.id}? It is lost for good.`, () => api('DELETE', path(p.id)), 'discard'))))
      : el('tr', {}, el('td', { colspan: 8 }, 'No poison messages.')))));
}

// ---- queue backlog ----

async function renderQueues(main) {
  const answer = await api('GET', 'queues');
  if (!answer.ok) {
    say(problem(answer), true);
    return;
  }
  main.append(el('p', {}, `Messages waiting in each queue of task hub ${answer.data.taskHub} `
    + '(approximate; hidden and delayed ones included).'),
  el('table', { id: 'queues' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Queue'), el('th', {}, 'Messages'))),
    el('tbody', {}, answer.data.queues.map((q) => el('tr', {},
      el('td', {}, q.queue), el('td', {}, String(q.messages)))))));
  const seconds = Number(new URLSearchParams(location.search).get('refresh') || 0);
  if (seconds > 0) refreshTimer = setInterval(() => render(false), seconds * 1000);
}

// ---- routing ----

async function render(clearMessage = true) {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
  if (clearMessage) say('');
  const params = new URLSearchParams(location.search);
  const view = params.get('view') || 'list';
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('current', a.dataset.view === view);
  }
  const main = document.getElementById('main');
  const fresh = el('div', { id: 'view', 'data-view': view });
  main.replaceChildren(fresh);
  try {
    if (view === 'instance') await renderInstance(fresh, params.get('id') || '');
    else if (view === 'entities') await renderEntities(fresh);
    else if (view === 'stuck') await renderStuck(fresh);
    else if (view === 'poison') await renderPoison(fresh);
    else if (view === 'queues') await renderQueues(fresh);
    else await renderList(fresh);
    fresh.setAttribute('data-ready', 'true');
  } catch (error) {
    say(String(error), true);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  for (const a of document.querySelectorAll('nav a')) {
    a.href = pageUrl({ view: a.dataset.view });
    a.addEventListener('click', (event) => { event.preventDefault(); go({ view: a.dataset.view }); });
  }
  window.addEventListener('popstate', () => render());
  render();
});
