/**
 * Debian's Chromium driven by playwright-core, for the browser tests and the cards bench (which
 * must not import vitest through test/_helpers.ts). `.ci/chromium.sh` installs it.
 */
import { existsSync } from "node:fs";

/** The browser's executable (`CHROMIUM` overrides); undefined when none is installed. */
export const CHROMIUM = [process.env.CHROMIUM, "/usr/lib/chromium/chromium", "/usr/bin/chromium"].find((p) => p && existsSync(p));

/** A headless Chromium with nothing running in the background that could skew a page's timings. */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
}
