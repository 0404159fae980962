/**
 * Debian's chromium under playwright-core, as the console's browser tests run it: headless, no network
 * side-channels (no background networking, updates, sync or QUIC), a fresh profile per launch, and every
 * request the pages make recorded so a test can prove the console fetches nothing from elsewhere.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Screenshots and other artifacts of the console tests (gitignored). */
export const ARTIFACTS = resolve(import.meta.dirname, "../../test-artifacts/console");

export interface Browser {
  context: BrowserContext;
  /** Every URL any page of the context requested, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), "keel-console-chromium-"));
  await mkdir(ARTIFACTS, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  const requests: string[] = [];
  context.on("request", (r) => requests.push(r.url()));
  return {
    context,
    requests,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
