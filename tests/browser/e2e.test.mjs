// Real-browser tests of the hosted payment page: headless Debian Chromium driven by
// playwright-core, against the real paysession-local binary on a fresh data directory.
// Env: PAYSESSION_LOCAL_BIN (the binary), SCREENSHOT_DIR (where screenshots go).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const SHOP = 'https://shop.example/';
const shots = process.env.SCREENSHOT_DIR || 'test-artifacts/screenshots';
mkdirSync(shots, { recursive: true });
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// A phone (412 × 915 CSS px) and a laptop window: every state is captured at both.
const PHONE = { width: 412, height: 915 }, DESKTOP = { width: 1280, height: 800 };
const audits = []; // one row per page state: axe violations and the phone page height

// Captures a page state: axe-core (WCAG 2.x A/AA rules) must find nothing, and screenshots
// at both widths are saved as <name>-412.png and <name>-1280.png. Returns the phone height.
async function capture(page, name) {
  await page.setViewportSize(PHONE);
  // Evaluated through the DevTools protocol, so the page's CSP (nonce-only scripts) stays on.
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.screenshot({ path: `${shots}/${name}-412.png`, fullPage: true });
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: `${shots}/${name}-1280.png`, fullPage: true });
  await page.setViewportSize(PHONE);
  const violations = result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  audits.push({ state: name, violations: violations.length, phone_height: height });
  assert.deepEqual(violations, [], `axe-core violations on ${name}`);
  return height;
}

// Opens one entry of the method chooser (the card is open at first).
async function openMethod(page, key) {
  await page.locator(`#m-${key} > summary`).click();
}

let server, base, clientId, secret, browser, otherOrigin, logs = '';

function startServer() {
  return new Promise((resolve, reject) => {
    const dir = mkdtempSync(join(tmpdir(), 'paysession-e2e-'));
    server = spawn(process.env.PAYSESSION_LOCAL_BIN, ['--port', '0', '--data-dir', dir], {
      env: { ...process.env, RUST_LOG: 'debug' },
    });
    server.stderr.on('data', (d) => { logs += d; });
    server.stdout.on('data', (d) => {
      logs += d;
      const text = logs;
      const b = text.match(/listening on (\S+)/), c = text.match(/client_id:\s+(\S+)/), s = text.match(/client_secret:\s+(\S+)/);
      if (b && c && s && !base) { base = b[1]; clientId = c[1]; secret = s[1]; resolve(); }
    });
    server.on('exit', (code) => { if (!base) reject(new Error(`server exited ${code}: ${logs}`)); });
  });
}

async function api(method, path, body, headers = {}) {
  const tok = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${clientId}:${secret}`).toString('base64'),
               'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  }).then((r) => r.json());
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${tok.access_token}`, 'content-type': 'application/json', ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: await r.json() };
}

let n = 0;
async function createSession(extra = {}) {
  n += 1;
  const r = await api('POST', '/v1/payment_sessions', {
    amount: 1050, currency: 'EUR', customer_id: 'cus_browser', reference: `e2e-${Date.now()}-${n}`,
    customer: { email: 'ada@example.com' }, allowed_domains: ['https://shop.example'],
    success_url: `${base}/demo/success`, state: 'browser-state', ...extra,
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: PHONE, ...options }); // a phone webview
  return context.newPage();
}

// Opens the page as launched from the merchant's allowed origin (no one-time code).
async function openFromShop(page, url) {
  const resp = await page.goto(url, { referer: SHOP });
  return resp;
}

async function payCard(page, number) {
  await page.getByLabel('Card number').fill(number);
  await page.getByLabel('Expiry (MM/YY)').fill('12/30');
  await page.getByLabel('Security code').fill('123');
  await page.locator('#pay-card').click();
}

const status = async (id) => (await api('GET', `/v1/payment_sessions/${id}`)).json;

before(async () => {
  await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  // A page on another origin that tries to frame the hosted page.
  otherOrigin = createServer((req, res) => {
    const target = decodeURIComponent(req.url.slice(1));
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><h1>evil</h1><iframe id="f" src="${target}" width="400" height="600"></iframe>`);
  });
  await new Promise((r) => otherOrigin.listen(0, '127.0.0.2', r));
});

after(async () => {
  await browser?.close();
  otherOrigin?.close();
  writeFileSync(`${shots}/../axe-and-heights.json`, JSON.stringify(audits, null, 2));
  const total = audits.reduce((n, a) => n + a.violations, 0);
  console.log(`axe-core: ${audits.length} page states checked, ${total} violations; screenshots at 412 and 1280 px in ${shots}`);
  for (const a of audits) console.log(`  ${a.state}: ${a.violations} violations, phone height ${a.phone_height}px`);
  server?.kill('SIGTERM');
  // No card number may ever appear in what the server logged, even at debug level.
  for (const pan of ['4242424242424242', '4000000000000002', '4000002760003184']) {
    assert.ok(!logs.includes(pan), `PAN ${pan} found in server logs`);
  }
});

test('card payment succeeds and lands on success_url with state', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await assert.doesNotReject(page.getByText('€10.50').first().waitFor());
  await capture(page, '01-payment-page');
  await payCard(page, '4242 4242 4242 4242');
  await page.waitForURL(/\/demo\/success\?session_id=/);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('session_id'), s.id);
  assert.equal(url.searchParams.get('state'), 'browser-state');
  // The demo shop's success page shows the session's outcome, read from the store.
  assert.equal(await page.locator('#status').innerText(), 'succeeded');
  assert.equal(await page.locator('#state').innerText(), 'browser-state');
  await capture(page, '10-demo-success');
  const after = await status(s.id);
  assert.equal(after.status, 'succeeded');
  assert.equal(after.payments[0].card.last4, '4242');
  // The page link itself now shows the receipt.
  await openFromShop(page, s.url);
  await page.locator('#receipt').waitFor();
  assert.match(await page.locator('#receipt').innerText(), /Visa •••• 4242/);
  assert.match(await page.locator('#receipt').innerText(), /e2e-/);
  await capture(page, '11-receipt');
});

test('the receipt of a refunded payment shows what was refunded', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await payCard(page, '4242 4242 4242 4242');
  await page.waitForURL(/\/demo\/success\?session_id=/);
  const pay = (await status(s.id)).payments[0].id;
  const r = await api('POST', '/v1/refunds', { payment_id: pay, amount: 400 }, { 'idempotency-key': `browser-${pay}` });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  // The sandbox settles card refunds a few seconds of its clock later.
  await api('POST', '/v1/test_clock/advance', { seconds: 10 });
  for (let i = 0; i < 100 && (await api('GET', `/v1/refunds/${r.json.id}`)).json.status !== 'succeeded'; i++) {
    await new Promise((ok) => setTimeout(ok, 50));
  }
  await openFromShop(page, s.url);
  await page.locator('#receipt').waitFor();
  assert.equal(await page.locator('#refunded').innerText(), '€4.00');
  await capture(page, '12-receipt-refunded');
});

test('a decline, then a retry that succeeds', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await payCard(page, '4000000000000002');
  await page.locator('#payment-error').waitFor();
  assert.match(await page.locator('#payment-error').innerText(), /declined/);
  await capture(page, '02-declined');
  await payCard(page, '4242424242424242');
  await page.waitForURL(/\/demo\/success/);
  assert.equal((await status(s.id)).attempts_remaining, 4);
});

for (const [decision, expected] of [['Approve', 'succeeded'], ['Decline', 'open']]) {
  test(`3-D Secure challenge: ${decision}`, async () => {
    const s = await createSession();
    const page = await newPage();
    await openFromShop(page, s.url);
    await payCard(page, '4000002760003184');
    await page.getByRole('heading', { name: /3-D Secure/ }).waitFor();
    if (decision === 'Approve') await capture(page, '03-3ds-challenge');
    await page.getByRole('button', { name: decision }).click();
    await page.waitForLoadState();
    assert.equal((await status(s.id)).status, expected);
  });
}

test('e-wallet approval', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await openMethod(page, 'ewallet');
  assert.equal(await page.locator('#m-card').getAttribute('open'), null, 'one method open at a time');
  await capture(page, '12-ewallet-chosen');
  await page.locator('#start-ewallet').click();
  await page.getByRole('heading', { name: 'Sandbox e-wallet' }).waitFor();
  await capture(page, '20-ewallet-provider');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.waitForURL(/\/demo\/success/);
  assert.equal((await status(s.id)).status, 'succeeded');
});

test('bank transfer: bank page, processing, settlement', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await openMethod(page, 'bank_transfer');
  await page.locator('#start-bank_transfer').click();
  await page.getByLabel('Your bank').waitFor();
  await capture(page, '21-bank-provider');
  await page.getByLabel('Your bank').selectOption('Sandbox Credit Union');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.locator('#settle').waitFor();
  assert.equal((await status(s.id)).status, 'processing');
  await capture(page, '04-bank-processing');
  await page.locator('#settle').click();
  await page.waitForURL(/\/demo\/success/);
  assert.equal((await status(s.id)).status, 'succeeded');
});

test('virtual account deposit', async () => {
  const s = await createSession({ payment_methods: ['virtual_account'] });
  const page = await newPage();
  await openFromShop(page, s.url);
  const number = (await page.locator('#va-number').innerText()).trim();
  assert.equal(number, s.instructions.virtual_account.account_number);
  await capture(page, '13-virtual-account');
  const r = await fetch(`${base}/sandbox/virtual_accounts/${number}/deposits`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 1050 }),
  });
  assert.equal(r.status, 200);
  await page.reload();
  await page.getByText('Payment received').waitFor();
});

test('QR payment', async () => {
  const s = await createSession({ payment_methods: ['qr'] });
  const page = await newPage();
  await openFromShop(page, s.url);
  const img = page.locator('#qr-image');
  await img.waitFor();
  assert.ok((await img.evaluate((el) => el.naturalWidth)) > 0, 'the QR image renders');
  await capture(page, '05-qr');
  const r = await fetch(`${base}/sandbox/qr/${s.instructions.qr.payload_id}/pay`, { method: 'POST' });
  assert.equal(r.status, 200);
  await page.reload();
  await page.getByText('Payment received').waitFor();
});

test('one-time code when opened outside the allowed domains', async () => {
  const s = await createSession();
  const page = await newPage();
  await page.goto(s.url); // no referer: not launched from https://shop.example
  await page.getByText('a***@example.com').waitFor();
  await capture(page, '06-otp');
  await page.getByLabel('6-digit code').fill('000000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText('That code is not right.').waitFor();
  await capture(page, '06-otp-wrong-code');
  const { json } = await api('GET', `/sandbox/otp?session_id=${s.id}`);
  await page.getByLabel('6-digit code').fill(json.code);
  await page.getByRole('button', { name: 'Verify' }).click();
  await payCard(page, '4242424242424242');
  await page.waitForURL(/\/demo\/success/);
});

test('expired session shows 410', async () => {
  const s = await createSession();
  await api('POST', '/v1/test_clock/advance', { seconds: 16 * 60 });
  const page = await newPage();
  const resp = await openFromShop(page, s.url);
  assert.equal(resp.status(), 410);
  await page.getByText('This payment link has expired.').waitFor();
  await capture(page, '07-expired');
});

test('refuses to render inside an iframe of a non-allowed origin', async () => {
  const s = await createSession();
  const page = await newPage();
  const evil = `http://127.0.0.2:${otherOrigin.address().port}/${encodeURIComponent(s.url)}`;
  const blocked = new Promise((resolve) => page.on('console', (m) => { if (/frame-ancestors/.test(m.text())) resolve(m.text()); }));
  await page.goto(evil);
  const message = await Promise.race([blocked, new Promise((r) => setTimeout(() => r(null), 5000))]);
  const frame = page.frames().find((f) => f !== page.mainFrame());
  const framed = frame ? await frame.locator('#amount').count().catch(() => 0) : 0;
  assert.equal(framed, 0, 'the payment page must not render in the frame');
  assert.ok(message, 'Chromium reports the frame-ancestors violation');
  await page.screenshot({ path: `${shots}/08-iframe-refused.png`, fullPage: true });
});

test('a first payment of a series shows the mandate terms and creates the mandate', async () => {
  const start = new Date(Date.now() + 3 * 86400e3).toISOString().slice(0, 10);
  const s = await createSession({
    session_type: 'first_in_series', customer_id: 'cus_browser_series',
    mandate: { type: 'scheduled', schedule: { interval: 'month', interval_count: 1, start_date: start, max_charges: 12 } },
  });
  const page = await newPage();
  await openFromShop(page, s.url);
  const terms = page.locator('#mandate-terms');
  await terms.waitFor();
  assert.match(await terms.innerText(), /every month, first on .*at most 12 times/);
  assert.equal(await page.locator('[name="method"]').count(), 0, 'a first payment offers the card form only');
  await capture(page, '09-mandate-terms');
  await payCard(page, '4242424242424242');
  await page.waitForURL(/\/demo\/success/);
  const after = await status(s.id);
  assert.equal(after.status, 'succeeded');
  assert.match(after.mandate_id, /^md_/);
  const mandate = (await api('GET', `/v1/mandates/${after.mandate_id}`)).json;
  assert.equal(mandate.status, 'active');
  assert.equal(mandate.payment_method_id, after.payment_method_id);
  assert.match(mandate.customer_acceptance.user_agent, /Chrome/, 'the browser that accepted is recorded');
});

test('phone: the page with the card open fits in two screen heights, and tabs in order', async () => {
  const s = await createSession({
    items: [{ name: 'T-shirt', quantity: 2, unit_amount: 400, type: 'product' },
            { name: 'Gift wrap', quantity: 1, unit_amount: 250, type: 'service_fee' }],
  });
  const page = await newPage();
  await openFromShop(page, s.url);
  const items = await page.locator('#items').innerText();
  assert.match(items, /T-shirt/);
  assert.match(items, /€8\.00/);
  assert.match(await page.locator('.total').innerText(), /Total\s+€10\.50/);
  const height = await capture(page, '14-phone-order-summary');
  assert.ok(height <= 2 * PHONE.height, `phone page is ${height}px, more than two screens`);
  await page.locator('#card_number').focus();
  const order = [];
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id));
  }
  assert.deepEqual(order, ['expiry', 'cvc', 'pay-card']);
});

test('card brand recognised as the number is typed', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  for (const [digits, brand] of [['4242', 'Visa'], ['5555', 'Mastercard'], ['3782', 'American Express'], ['6011', 'Discover'], ['9999', '']]) {
    await page.locator('#card_number').fill('');
    await page.locator('#card_number').pressSequentially(digits);
    assert.equal(await page.locator('#card-brand').innerText(), brand, digits);
  }
  await page.locator('#card_number').fill('');
  await page.locator('#card_number').pressSequentially('378282246310005');
  assert.equal(await page.locator('#card_number').inputValue(), '3782 822463 10005', 'Amex grouping');
});

test('after a field error the expiry is kept, the number and CVC are not, and errors are sentences', async () => {
  const s = await createSession({ save_payment_method: 'prompt' });
  const page = await newPage();
  await openFromShop(page, s.url);
  await page.getByLabel('Card number').fill('4242 4242 4242 4241');
  await page.getByLabel('Expiry (MM/YY)').fill('12/31');
  await page.getByLabel('Security code').fill('12');
  await page.locator('#save').check();
  await page.locator('#pay-card').click();
  await page.locator('#card_number-err').waitFor();
  assert.equal(await page.locator('#expiry').inputValue(), '12/31');
  assert.equal(await page.locator('#save').isChecked(), true);
  assert.equal(await page.locator('#card_number').inputValue(), '');
  assert.equal(await page.locator('#cvc').inputValue(), '');
  for (const id of ['#card_number-err', '#cvc-err']) {
    const text = await page.locator(id).innerText();
    assert.match(text, /^[A-Z].*\.$/, `${id} reads as a sentence: ${text}`);
  }
  await capture(page, '15-field-errors');
});

test('German page: texts, amounts, placeholder and dates in the locale', async () => {
  const s = await createSession({ locale: 'de' });
  const page = await newPage();
  await openFromShop(page, s.url);
  assert.match(await page.locator('.total').innerText(), /Gesamt\s+10,50 €/);
  assert.equal(await page.locator('#expiry').getAttribute('placeholder'), 'MM/JJ');
  assert.match(await page.locator('#expires').getAttribute('title'), /2\d{3}/);
  assert.equal(await page.locator('html').getAttribute('lang'), 'de');
  await capture(page, '16-german');
});

test('without JavaScript: the chooser and a card payment still work', async () => {
  const s = await createSession();
  const page = await newPage({ javaScriptEnabled: false });
  await openFromShop(page, s.url);
  await openMethod(page, 'bank_transfer');
  assert.equal(await page.locator('#m-card').getAttribute('open'), null);
  await openMethod(page, 'card');
  await payCard(page, '4242424242424242');
  await page.waitForURL(/\/demo\/success/);
  assert.equal(await page.locator('#status').innerText(), 'succeeded');
});

test('no contact on file: the code step says so and what to do', async () => {
  const s = await createSession({ customer: undefined });
  const page = await newPage();
  await page.goto(s.url);
  await page.getByText('No email address or phone number is on file').waitFor();
  await capture(page, '17-otp-no-contact');
});

test('the local start page and the demo cancel page', async () => {
  const page = await newPage();
  const resp = await page.goto(`${base}/`);
  assert.equal(resp.status(), 200);
  assert.ok(await page.locator('a[href="/openapi.json"]').count());
  await page.getByText('4242 4242 4242 4242').first().waitFor();
  // On loopback the page shows the demo secret, and it works.
  const id = await page.locator('#client-id').innerText();
  const secret = await page.locator('#client-secret').innerText();
  const token = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  assert.equal(token.status, 200);
  await capture(page, '18-landing');
  // Its README links land on the README's sections.
  await page.locator('a[href="/readme#webhooks"]').click();
  await page.waitForURL(/\/readme#webhooks$/);
  await page.locator('h3#webhooks').waitFor();
  await page.locator('h2#the-two-commands').waitFor();
  const s = await createSession({ cancel_url: `${base}/demo/cancel` });
  await openFromShop(page, s.url);
  await page.locator('#cancel').click();
  await page.waitForURL(/\/demo\/cancel/);
  await capture(page, '19-demo-cancel');
});

test('cancelled and unknown links explain themselves', async () => {
  const s = await createSession({ cancel_url: `${base}/demo/cancel` });
  await api('POST', `/v1/payment_sessions/${s.id}/cancel`, { reason: 'requested_by_customer' });
  const page = await newPage();
  await openFromShop(page, s.url);
  await page.getByText('This payment was cancelled.').waitFor();
  await capture(page, '22-cancelled');
  const missing = await page.goto(`${base}/pay/no-such-link`);
  assert.equal(missing.status(), 404);
  await page.getByText('This payment link does not exist.').waitFor();
  await capture(page, '23-unknown-link');
});
