// Drives the dashboard in Debian's Chromium (headless, through playwright-core) against a running
// app whose instances tests/dashboard.rs started; exits non-zero on any failed check.
// Usage: node dashboard.mjs <base URL> <JSON of the instance ids> <screenshot directory>
import { chromium } from 'playwright-core';

const [base, idsJson, shots] = process.argv.slice(2);
const ids = JSON.parse(idsJson);
const failures = [];
const TIMEOUT = 20000;

function expect(condition, what) {
  if (!condition) throw new Error(what);
}

async function check(name, body) {
  try {
    await body();
    console.log(`ok   ${name}`);
  } catch (error) {
    console.log(`FAIL ${name}: ${error.message}`);
    failures.push(name);
  }
}

const dashboard = (query = '') => `${base}/api/dashboard${query}`;
const instanceUrl = (id) => dashboard(`?view=instance&id=${encodeURIComponent(id)}`);

async function ready(page) {
  await page.waitForSelector('#view[data-ready="true"]', { timeout: TIMEOUT });
}

async function confirm(page, expected) {
  const dialog = page.locator('dialog#confirm');
  await dialog.waitFor({ state: 'visible', timeout: TIMEOUT });
  const text = await page.locator('#confirm-text').textContent();
  expect(text.includes(expected), `the confirmation says '${text}', not '${expected}'`);
  await page.click('#confirm-yes');
}

/// The ids the instance list shows, sorted.
async function listedIds(page) {
  return (await page.locator('#instances tbody td:first-child a').allTextContents()).sort();
}

/// Applies the list's version and tag filters through the form.
async function filterBy(page, { version = '', tag = '' }) {
  await page.fill('input[name=version]', version);
  await page.fill('input[name=tag]', tag);
  await page.click('#filters button[type=submit]');
  await ready(page);
}

/// The text of the detail field named `name`.
function field(page, name) {
  return page.locator(`xpath=//dl[@class="fields"]/dt[.="${name}"]/following-sibling::dd[1]`);
}

function same(shown, expected, what) {
  expect(JSON.stringify(shown) === JSON.stringify(expected), `${what}: ${JSON.stringify(shown)}, expected ${JSON.stringify(expected)}`);
}

/// Reloads the instance's page until its status is `status`.
async function waitForStatus(page, id, status) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    await page.goto(instanceUrl(id));
    await ready(page);
    const shown = await page.locator('dl.fields .status').first().textContent();
    if (shown === status) return;
    expect(Date.now() < deadline, `${id} still shows ${shown}, not ${status}`);
    await page.waitForTimeout(300);
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
// Anything hostile data manages to run shows up as one of these.
const dialogs = [];
page.on('dialog', (dialog) => { dialogs.push(dialog.message()); dialog.dismiss(); });
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(error.message));

await check('the list shows the instances and filters by status, name and id prefix', async () => {
  await page.goto(dashboard());
  await ready(page);
  const all = await page.locator('#instances tbody tr').count();
  expect(all >= ids.hello.length + 3, `only ${all} rows without a filter`);
  await page.check('input[name=status][value=Completed]');
  await page.fill('input[name=name]', 'HelloSequence5');
  await page.fill('input[name=prefix]', 'hello-');
  await page.click('#filters button[type=submit]');
  await ready(page);
  const url = new URL(page.url());
  expect(url.searchParams.get('status') === 'Completed' && url.searchParams.get('name') === 'HelloSequence5'
    && url.searchParams.get('prefix') === 'hello-', `the URL does not carry the filter: ${page.url()}`);
  const rows = page.locator('#instances tbody tr');
  const shown = await rows.locator('td:first-child').allTextContents();
  expect(JSON.stringify([...shown].sort()) === JSON.stringify([...ids.hello].sort()),
    `filtered rows ${JSON.stringify(shown)}, expected ${JSON.stringify(ids.hello)}`);
  const statuses = await rows.locator('td:nth-child(3)').allTextContents();
  expect(statuses.every((s) => s === 'Completed'), `statuses ${statuses}`);
  const bars = await page.locator('#starts-histogram rect.fill-Completed').count();
  expect(bars > 0, 'the histogram has no Completed bar');
  // A shared link opens the same filter.
  const again = await browser.newPage();
  await again.goto(page.url());
  await ready(again);
  expect(await again.locator('#instances tbody tr').count() === ids.hello.length, 'the shared URL shows another list');
  expect(await again.isChecked('input[name=status][value=Completed]'), 'the shared URL lost the status');
  await again.close();
  await page.screenshot({ path: `${shots}/list.png`, fullPage: true });
});

await check('paging follows the continuation token', async () => {
  await page.goto(dashboard('?prefix=page-'));
  await ready(page);
  // 50 a page: the test started 55.
  const first = await page.locator('#instances tbody tr').count();
  expect(first === 50, `first page ${first} rows`);
  await page.click('#next-page');
  await page.waitForFunction(() => document.querySelectorAll('#instances tbody tr').length === 5, null, { timeout: TIMEOUT });
});

await check('the list filters by tag key, by key=value and by version, and shows both', async () => {
  await page.goto(dashboard());
  await ready(page);
  await filterBy(page, { tag: 'team' });
  expect(new URL(page.url()).searchParams.get('tag') === 'team', `the URL does not carry the tag: ${page.url()}`);
  same(await listedIds(page), ['tagged-1', 'tagged-2'], 'instances with the key team');
  const histogram = await page.locator('#starts-histogram text').first().textContent();
  expect(histogram === 'Starts by status: 2 instances', `the histogram counts '${histogram}'`);
  const row = page.locator('#instances tbody tr', { has: page.locator('a:text-is("tagged-1")') });
  const version = await row.locator('td:nth-child(4)').textContent();
  expect(version === '2.0', `tagged-1 shows version '${version}'`);
  same((await row.locator('td.tags .tag').allTextContents()).sort(), ['env=prod', 'team=data'], 'the tags of tagged-1');
  await filterBy(page, { tag: 'env=prod, team=data' });
  same(await listedIds(page), ['tagged-1'], 'env=prod and team=data');
  await filterBy(page, { tag: 'env=prod' });
  same(await listedIds(page), ['tagged-1', 'tagged-3'], 'env=prod');
  await filterBy(page, { version: '3.0' });
  same(await listedIds(page), ['tagged-2'], 'version 3.0');
  await filterBy(page, { version: '2.0', tag: 'env' });
  const url = new URL(page.url());
  expect(url.searchParams.get('version') === '2.0' && url.searchParams.get('tag') === 'env', `the URL does not carry the filter: ${page.url()}`);
  same(await listedIds(page), ['tagged-1'], 'version 2.0 with the key env');
  // A shared link opens the same filter.
  const again = await browser.newPage();
  await again.goto(page.url());
  await ready(again);
  same(await listedIds(again), ['tagged-1'], 'the shared URL');
  expect(await again.inputValue('input[name=version]') === '2.0' && await again.inputValue('input[name=tag]') === 'env',
    'the shared URL lost the version or tag filter');
  await again.close();
  await page.screenshot({ path: `${shots}/tags.png`, fullPage: true });
});

await check('a tag filter without a key, or naming one twice, is refused in the page', async () => {
  for (const [tag, why] of [['=data', 'names no key'], ['team, team=data', 'twice']]) {
    await page.goto(dashboard(`?tag=${encodeURIComponent(tag)}`));
    await ready(page);
    const message = page.locator('#message.error');
    expect((await message.textContent()).includes(why), `'${tag}' says '${await message.textContent()}'`);
    expect(await page.locator('#instances').count() === 0, `'${tag}' still lists instances`);
  }
});

await check('the instance shows its version and tags, or none', async () => {
  await page.goto(instanceUrl('tagged-1'));
  await ready(page);
  expect(await field(page, 'Version').textContent() === '2.0', 'tagged-1 does not show version 2.0');
  same((await field(page, 'Tags').locator('.tag').allTextContents()).sort(), ['env=prod', 'team=data'], 'the tags of tagged-1');
  await page.goto(instanceUrl(ids.hello[0]));
  await ready(page);
  for (const name of ['Version', 'Tags']) {
    const shown = await field(page, name).textContent();
    expect(shown === 'none', `${ids.hello[0]} shows ${name} '${shown}'`);
  }
});

await check('hostile tag keys, values and versions are shown as text and run nothing', async () => {
  await page.goto(dashboard('?tag=note'));
  await ready(page);
  same(await listedIds(page), ['tagged-hostile'], 'instances with the key note');
  const tags = (await page.locator('#instances td.tags .tag').allTextContents()).sort();
  same(tags, ['<b onclick=x>k</b>=<script>window.__xss=6</script>', `note=${ids.hostileTag}`], 'the hostile tags');
  expect(await page.locator('#instances tbody td:nth-child(4)').textContent() === ids.hostileTag, 'the hostile version is not shown as text');
  expect(await page.locator('main script, main img, main b').count() === 0, 'markup from the tags made it into the list');
  await page.goto(instanceUrl('tagged-hostile'));
  await ready(page);
  expect(await field(page, 'Version').textContent() === ids.hostileTag, 'the hostile version is not shown as text');
  expect(await field(page, 'Tags').locator('.tag').count() === 2, 'the hostile tags are not shown');
  expect(await page.locator('main script, main img, main b').count() === 0, 'markup from the tags made it into the page');
  await page.waitForTimeout(500);
  expect(await page.evaluate(() => window.__xss) === undefined, 'a hostile tag ran');
  expect(dialogs.length === 0, `dialogs opened: ${dialogs}`);
});

await check('a bulk purge by tag purges what the tag filter matches only', async () => {
  await page.goto(dashboard(`?tag=${encodeURIComponent('batch=old')}`));
  await ready(page);
  same(await listedIds(page), ['tagged-3', 'tagged-4'], 'batch=old');
  await page.click('#bulk-purge');
  await confirm(page, 'Purge 2 ended instances');
  await page.waitForFunction(() => document.getElementById('message').textContent === 'Purged 2 instances.', null, { timeout: TIMEOUT });
  await ready(page);
  same(await listedIds(page), [], 'batch=old after the purge');
  await page.goto(dashboard('?tag=batch'));
  await ready(page);
  same(await listedIds(page), ['tagged-5'], 'batch after the purge');
});

await check('auto-refresh shows an instance started after the page loaded', async () => {
  await page.goto(dashboard('?prefix=late-&refresh=5'));
  await ready(page);
  expect(await page.locator('#instances tbody a').count() === 0, 'late- instances before any was started');
  const started = await page.request.post(`${base}/api/orchestrators/HelloSequence5/late-1`, { data: null });
  expect(started.status() === 202, `starting late-1 answered ${started.status()}`);
  await page.waitForSelector('#instances a:text-is("late-1")', { timeout: TIMEOUT });
});

await check('the function key in the page URL goes with every API call', async () => {
  const calls = [];
  const keyed = await browser.newPage();
  keyed.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/api/')) calls.push(request.url());
  });
  await keyed.goto(dashboard('?code=the-key&view=list'));
  await ready(keyed);
  await keyed.click(`#instances a:text-is("${ids.hello[0]}")`);
  await ready(keyed);
  await keyed.close();
  const apiCalls = calls.filter((url) => !url.includes('/api/dashboard'));
  expect(apiCalls.length >= 3, `only ${apiCalls.length} API calls seen`);
  const keyless = apiCalls.filter((url) => new URL(url).searchParams.get('code') !== 'the-key');
  expect(keyless.length === 0, `calls without the key: ${keyless}`);
});

await check('an instance shows its fields, storage requests, JSON, history and a timeline of its activities', async () => {
  await page.goto(dashboard(`?view=list&prefix=${ids.hello[0]}`));
  await ready(page);
  await page.click(`#instances a:text-is("${ids.hello[0]}")`);
  await ready(page);
  expect(await page.locator('#instance-id').textContent() === ids.hello[0], 'another instance opened');
  const output = JSON.parse(await page.locator('#output').textContent());
  expect(output.length === 5 && output[0] === 'Hello Tokyo!', `output ${JSON.stringify(output)}`);
  const activities = await page.locator('#timeline g.span[data-kind=activity]').count();
  expect(activities === 5, `${activities} activities on the timeline`);
  const durations = await page.locator('#timeline g.span text:last-of-type').allTextContents();
  expect(durations.every((d) => /\d+(\.\d)? (ms|s|min|h)/.test(d)), `durations ${durations}`);
  const history = await page.locator('#history tbody tr').count();
  expect(history >= 7, `${history} history rows`);
  // Beside the history's size, the storage requests the instance spent, as the API counts them.
  const spent = await page.locator('xpath=//dl[@class="fields"]/dt[.="Storage requests"]/following-sibling::dd[1]').textContent();
  const status = await (await fetch(`${base}/api/instances/${encodeURIComponent(ids.hello[0])}?showHistory=true`)).json();
  expect(/^[1-9]\d*$/.test(spent) && spent === String(status.storageRequests),
    `the page shows '${spent}' storage requests, the API ${status.storageRequests}`);
  await page.screenshot({ path: `${shots}/instance.png`, fullPage: true });
});

await check('a sub-orchestration links to its parent and the parent to it', async () => {
  await page.goto(instanceUrl(ids.parent));
  await ready(page);
  const child = page.locator('dl.fields dd a').first();
  const childId = await child.textContent();
  expect(childId && childId !== ids.parent, `child link '${childId}'`);
  expect(await page.locator('#timeline g.span[data-kind=suborchestration]').count() > 0, 'no sub-orchestration on the timeline');
  await page.screenshot({ path: `${shots}/parent.png` });
  await child.click();
  await ready(page);
  const parent = await page.locator('dl.fields dd a').first().textContent();
  expect(parent === ids.parent, `the child names '${parent}' as parent`);
});

await check('a failed instance shows its failure and the cause chain', async () => {
  await page.goto(instanceUrl(ids.failed));
  await ready(page);
  const failures = await page.locator('#failures .failure').count();
  expect(failures >= 1, 'no failure shown');
});

await check('raising ApprovalDecision from the page completes the claim', async () => {
  await page.goto(instanceUrl(ids.claim));
  await ready(page);
  await page.fill('#event-name', 'ApprovalDecision');
  await page.fill('#event-body', '{"Approved":true,"Approver":"a","Comment":"c"}');
  await page.click('button[data-action=raise]');
  await confirm(page, 'ApprovalDecision');
  await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Raised'), null, { timeout: TIMEOUT });
  await waitForStatus(page, ids.claim, 'Completed');
  const output = JSON.parse(await page.locator('#output').textContent());
  expect(output.Status === 'Approved' && output.Approver === 'a', `output ${JSON.stringify(output)}`);
  expect(await page.locator('#timeline g.span[data-kind=event]').count() === 1, 'the event wait is not on the timeline');
});

await check('terminating from the page ends the instance; Cancel and Escape do nothing', async () => {
  await page.goto(instanceUrl(ids.terminate));
  await ready(page);
  await page.click('button[data-action=terminate]');
  await page.click('#confirm-no');
  await page.click('button[data-action=terminate]');
  await page.keyboard.press('Escape');
  await page.waitForTimeout(300);
  await page.goto(instanceUrl(ids.terminate));
  await ready(page);
  const status = await page.locator('dl.fields .status').first().textContent();
  expect(status === 'Running', `after Cancel and Escape the instance is ${status}`);
  await page.click('button[data-action=terminate]');
  await confirm(page, `Terminate ${ids.terminate}`);
  await waitForStatus(page, ids.terminate, 'Terminated');
});

await check('restarting from the page opens the new run', async () => {
  await page.goto(instanceUrl(ids.hello[1]));
  await ready(page);
  await page.click('button[data-action=restart]');
  await confirm(page, `Restart ${ids.hello[1]}`);
  await page.waitForFunction((old) => {
    const id = document.getElementById('instance-id');
    return id && id.textContent !== old;
  }, ids.hello[1], { timeout: TIMEOUT });
  expect(await page.locator('h2').textContent().then((t) => t.startsWith('HelloSequence5')), 'the new run is another orchestration');
});

await check('a bulk purge counts what the filter matches, then purges it', async () => {
  await page.goto(dashboard('?prefix=purge-'));
  await ready(page);
  await page.click('#bulk-purge');
  await confirm(page, `Purge ${ids.purge.length} ended instances`);
  await page.waitForFunction((n) => document.getElementById('message').textContent === `Purged ${n} instances.`, ids.purge.length, { timeout: TIMEOUT });
  await ready(page);
  const left = await page.locator('#instances tbody a').count();
  expect(left === 0, `${left} instances left after the purge`);
});

await check('hostile ids, inputs and outputs are shown as text and run nothing', async () => {
  await page.goto(dashboard('?view=list'));
  await ready(page);
  expect(await page.locator(`#instances a:text-is(${JSON.stringify(ids.hostile)})`).count() === 1, 'the hostile id is not shown as text');
  await page.goto(instanceUrl(ids.hostile));
  await ready(page);
  const output = await page.locator('#output').textContent();
  expect(output.includes('<script>'), `the output is not shown as text: ${output}`);
  expect(await page.locator('main script, main img').count() === 0, 'markup from the data made it into the page');
  await page.waitForTimeout(500);
  const flag = await page.evaluate(() => window.__xss);
  expect(flag === undefined, `a hostile script ran: ${flag}`);
  expect(dialogs.length === 0, `dialogs opened: ${dialogs}`);
  await page.screenshot({ path: `${shots}/hostile.png`, fullPage: true });
});

await check('the queue view shows each control queue and the work-item queue', async () => {
  await page.goto(dashboard('?view=queues'));
  await ready(page);
  const queues = await page.locator('#queues tbody td:first-child').allTextContents();
  const expected = ['control-00', 'control-01', 'control-02', 'control-03', 'workitems'];
  expect(JSON.stringify(queues) === JSON.stringify(expected), `queues ${queues}`);
  const counts = await page.locator('#queues tbody td:nth-child(2)').allTextContents();
  expect(counts.every((c) => /^\d+$/.test(c)), `counts ${counts}`);
});

await check('a poison message shows as text, cannot be requeued unread, and is discarded', async () => {
  await page.goto(dashboard('?view=poison'));
  await ready(page);
  const row = page.locator('#poison tbody tr', { hasText: ids.poisonText });
  expect(await row.count() === 1, 'the malformed message is not listed as text');
  await row.locator('button[data-action=requeue]').click();
  await confirm(page, 'Send message');
  await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Requeue failed: 409'), null, { timeout: TIMEOUT });
  await ready(page);
  await page.locator('#poison tbody tr', { hasText: ids.poisonText }).locator('button[data-action=discard]').click();
  await confirm(page, 'Discard message');
  await page.waitForFunction(() => document.getElementById('message').textContent === 'Discard: done.', null, { timeout: TIMEOUT });
  await ready(page);
  expect(await page.locator('#poison tbody tr', { hasText: ids.poisonText }).count() === 0, 'the discarded message is still listed');
  expect(await page.evaluate(() => window.__xss) === undefined, 'the message text ran');
});

await check('the stuck view loads; a claim waiting on its timer is not stuck', async () => {
  await page.goto(dashboard('?view=stuck&minutes=0'));
  await ready(page);
  // Running with its timer open (a claim waiting for a decision): not stuck. (The positive
  // cases are tests/features/stuck.rs: the seed app has no workflow that waits on nothing.)
  expect(await page.locator('#stuck').count() === 1, 'no stuck table');
  const listed = await page.locator('#stuck tbody td:first-child').allTextContents();
  expect(!listed.includes(ids.timer), `an instance waiting on its timer is listed: ${listed}`);
});

await check('the stuck view shows a message waiting for its instance\'s start, as text', async () => {
  await page.goto(dashboard('?view=stuck&minutes=0'));
  await ready(page);
  const row = page.locator('#waiting tbody tr', { hasText: ids.waiting });
  expect(await row.count() === 1, `the message for ${ids.waiting} is not listed`);
  const cells = await row.locator('td').allTextContents();
  expect(cells[1] === `EventRaised '${ids.waitingEvent}'`, `the message shows as '${cells[1]}'`);
  expect(/^control-\d\d$/.test(cells[2]), `queue '${cells[2]}'`);
  expect(/^\d+ s$/.test(cells[4]), `waited '${cells[4]}'`);
  expect(cells[5] !== '', 'no parking time');
  await page.screenshot({ path: `${shots}/stuck.png`, fullPage: true });
  expect(await page.evaluate(() => window.__xss) === undefined, 'the event name ran');
});

await check('the entities view lists every entity, then a named function\'s with their state', async () => {
  await page.goto(dashboard('?view=entities'));
  await ready(page);
  const keys = await page.locator('#entities tbody td:nth-child(2)').allTextContents();
  same([...keys].sort(), [ids.hostileKey, ids.counter].sort(), 'the entity keys');
  expect(await page.locator('main script, main img').count() === 0, 'markup from a key made it into the page');
  await page.locator('#entities tbody td:first-child a').first().click();
  await ready(page);
  expect(new URL(page.url()).searchParams.get('entity') === 'counter', `the named view is not counter's: ${page.url()}`);
  const row = page.locator('#entities tbody tr', { has: page.locator(`a:text-is("${ids.counter}")`) });
  same(await row.locator('td').allTextContents(), [ids.counter, '5', '1', await row.locator('td:nth-child(4)').textContent(), '', '0'], `the row of ${ids.counter}`);
  expect(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/.test(await row.locator('td:nth-child(4)').textContent()), 'no last operation time');
  await page.screenshot({ path: `${shots}/entities.png`, fullPage: true });
  await page.goto(dashboard('?view=entities&entity=nobody'));
  await ready(page);
  expect((await page.locator('#message.error').textContent()).includes('404'), 'an unknown entity name is not reported');
});

await check('an entity from the instance list shows its state, no history, and takes a signal', async () => {
  const id = `@counter@${ids.counter}`;
  await page.goto(dashboard(`?prefix=${encodeURIComponent(id)}`));
  await ready(page);
  await page.click(`#instances a:text-is("${id}")`);
  await ready(page);
  expect(await page.locator('#instance-id').textContent() === id, 'another instance opened');
  expect(await page.locator('#entity-state').textContent() === '5', 'the state is not 5');
  expect(await page.locator('#history').count() === 0, 'an entity shows a history');
  await page.fill('#entity-op', 'add');
  await page.fill('#entity-input', '2');
  await page.click('button[data-action=signal]');
  await confirm(page, `Signal 'add' to ${id}`);
  await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Signalled'), null, { timeout: TIMEOUT });
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    await page.goto(instanceUrl(id));
    await ready(page);
    if (await page.locator('#entity-state').textContent() === '7') break;
    expect(Date.now() < deadline, 'the signalled add never showed');
    await page.waitForTimeout(300);
  }
  await page.fill('#entity-op', 'add');
  await page.fill('#entity-input', '{not json');
  await page.click('button[data-action=signal]');
  expect((await page.locator('#message.error').textContent()).includes('not JSON'), 'a bad input is not refused in the page');
  await page.screenshot({ path: `${shots}/entity.png`, fullPage: true });
  await page.goto(instanceUrl(`@counter@${ids.hostileKey}`));
  await ready(page);
  expect(await page.locator('dl.fields dd').nth(1).textContent() === ids.hostileKey, 'the hostile key is not shown as text');
  expect(await page.locator('main script, main img').count() === 0, 'markup from a key made it into the page');
  await page.goto(dashboard('?view=stuck&minutes=0'));
  await ready(page);
  const stuck = await page.locator('#stuck tbody td:first-child').allTextContents();
  expect(!stuck.includes(id), `an entity is listed as stuck: ${stuck}`);
  expect(await page.evaluate(() => window.__xss) === undefined, 'a hostile key ran');
});

await check('the page raised no script error', async () => {
  expect(pageErrors.length === 0, `errors: ${pageErrors}`);
});

await browser.close();
if (failures.length) {
  console.log(`${failures.length} checks failed: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('all checks passed');
