// Real-browser tests of the hosted payment page: headless Debian Chromium driven by
// playwright-core, against the real paysession-local binary on a fresh data directory.
// Env: PAYSESSION_LOCAL_BIN (the binary), SCREENSHOT_DIR (where screenshots go).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const SHOP = 'https://shop.example/';
const shots = process.env.SCREENSHOT_DIR || 'test-artifacts/screenshots';
mkdirSync(shots, { recursive: true });

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

async function api(method, path, body) {
  const tok = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${clientId}:${secret}`).toString('base64'),
               'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  }).then((r) => r.json());
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${tok.access_token}`, 'content-type': 'application/json' },
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

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone webview
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
  await page.screenshot({ path: `${shots}/01-payment-page.png`, fullPage: true });
  await payCard(page, '4242 4242 4242 4242');
  await page.waitForURL(/\/demo\/success\?session_id=/);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('session_id'), s.id);
  assert.equal(url.searchParams.get('state'), 'browser-state');
  const after = await status(s.id);
  assert.equal(after.status, 'succeeded');
  assert.equal(after.payments[0].card.last4, '4242');
});

test('a decline, then a retry that succeeds', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await payCard(page, '4000000000000002');
  await page.locator('#payment-error').waitFor();
  assert.match(await page.locator('#payment-error').innerText(), /declined/);
  await page.screenshot({ path: `${shots}/02-declined.png`, fullPage: true });
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
    if (decision === 'Approve') await page.screenshot({ path: `${shots}/03-3ds-challenge.png`, fullPage: true });
    await page.getByRole('button', { name: decision }).click();
    await page.waitForLoadState();
    assert.equal((await status(s.id)).status, expected);
  });
}

test('e-wallet approval', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await page.locator('#start-ewallet').click();
  await page.getByRole('heading', { name: 'Sandbox e-wallet' }).waitFor();
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.waitForURL(/\/demo\/success/);
  assert.equal((await status(s.id)).status, 'succeeded');
});

test('bank transfer: bank page, processing, settlement', async () => {
  const s = await createSession();
  const page = await newPage();
  await openFromShop(page, s.url);
  await page.locator('#start-bank_transfer').click();
  await page.getByLabel('Your bank').selectOption('Sandbox Credit Union');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.locator('#settle').waitFor();
  assert.equal((await status(s.id)).status, 'processing');
  await page.screenshot({ path: `${shots}/04-bank-processing.png`, fullPage: true });
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
  await page.screenshot({ path: `${shots}/05-qr.png`, fullPage: true });
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
  await page.screenshot({ path: `${shots}/06-otp.png`, fullPage: true });
  await page.getByLabel('6-digit code').fill('000000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText('That code is not right.').waitFor();
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
  await page.screenshot({ path: `${shots}/07-expired.png`, fullPage: true });
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
  await page.screenshot({ path: `${shots}/09-mandate-terms.png`, fullPage: true });
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
