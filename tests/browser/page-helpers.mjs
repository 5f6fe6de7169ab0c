// Helpers shared by the scenarios: a watcher that records every console error, page error, failed
// request and 4xx/5xx answer of a page, and the sign-in steps.

/**
 * Records problems on `page`. `allow(text)` may excuse expected ones (e.g. refused connections
 * while the server is deliberately stopped). `problems()` returns what was recorded.
 */
export function watchPage(page, label) {
  const problems = [];
  let allow = () => false;
  const record = (kind, text) => {
    if (!allow(text)) problems.push(`${label}: ${kind}: ${text}`);
  };
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      record(`console ${message.type()}`, message.text());
    }
  });
  page.on('pageerror', (error) => record('page error', error.message));
  page.on('requestfailed', (request) =>
    record('request failed', `${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) record(`HTTP ${response.status()}`, response.url());
  });
  return {
    problems: () => [...problems],
    excuse(predicate) {
      allow = predicate;
    },
  };
}

/** Opens the page, signs in with a display name (DEV MODE), waits until the status is online. */
export async function signInDev(page, baseUrl, name) {
  await page.goto(baseUrl);
  await page.locator('#signin-button:not([disabled])').waitFor();
  await page.fill('#display-name', name);
  await page.click('#signin-button');
  await waitOnline(page);
}

/** Opens the page, signs in with a pasted token (a server with a configured secret). */
export async function signInWithToken(page, baseUrl, token) {
  await page.goto(baseUrl);
  await page.locator('#signin-button:not([disabled])').waitFor();
  await page.fill('#token-input', token);
  await page.click('#signin-button');
  await waitOnline(page);
}

export function waitOnline(page, timeout = 10_000) {
  return page.locator('#status[data-status="online"]').waitFor({ timeout });
}

/** Types into the composer and sends with Enter; returns the client id of the new bubble. */
export async function sendMessage(page, text) {
  const before = await page.locator('#transcript .message--own').count();
  await page.fill('#draft', text);
  await page.press('#draft', 'Enter');
  const bubble = page.locator('#transcript .message--own').nth(before);
  await bubble.waitFor();
  return bubble.getAttribute('data-id');
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
