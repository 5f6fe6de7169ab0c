// Controls EmotiBot server processes for the scenarios: waits for health, stops one (by pid or
// handle), starts another on the same port. Every process started here is killed on exit.
import { spawn } from 'node:child_process';

const started = new Set();
process.on('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});

/** GET /healthz; true on a 200 answer. */
export async function isHealthy(baseUrl) {
  try {
    const response = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/** Resolves once `probe()` returns `wanted`, polling every 25 ms; rejects after `timeoutMs`. */
async function waitFor(probe, wanted, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await probe()) === wanted) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export function waitHealthy(baseUrl, timeoutMs = 10_000) {
  return waitFor(() => isHealthy(baseUrl), true, timeoutMs, `${baseUrl} to become healthy`);
}

export function waitGone(baseUrl, timeoutMs = 10_000) {
  return waitFor(() => isHealthy(baseUrl), false, timeoutMs, `${baseUrl} to stop answering`);
}

/**
 * Stops a server (a pid from the Rust test, or a child started here) and waits until its port no
 * longer answers. A pid's process may linger as a zombie until its parent reaps it, so the port,
 * not the pid, tells when it is gone.
 */
export async function stopServer(server, baseUrl) {
  if (typeof server === 'number') {
    try {
      process.kill(server, 'SIGTERM');
    } catch (err) {
      if (err.code !== 'ESRCH') throw err;
    }
  } else {
    server.kill('SIGTERM');
    started.delete(server);
  }
  await waitGone(baseUrl);
}

/** Starts `bin` with `args` and waits until it is healthy; returns the child process. */
export async function startServer(bin, args, baseUrl) {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  started.add(child);
  const exited = new Promise((_, reject) =>
    child.once('exit', (code) => reject(new Error(`server exited early with code ${code}`))),
  );
  exited.catch(() => {}); // only matters while we wait for health below
  await Promise.race([waitHealthy(baseUrl), exited]);
  return child;
}
