/// <reference lib="dom" />
/**
 * The console's web app: hash routes (#/rollouts, #/rollouts/<id>, #/fleets/<fleet>, #/releases), one view
 * at a time, refreshed by polling the console's proxy every few seconds (no reload), plus a one-second
 * clock for countdowns. A poll never overlaps the previous one, and a hidden tab does not poll.
 */
import { fill, type View, type ViewContext } from "./view.ts";
import { fleetsView } from "./views/fleets.ts";
import { releasesView } from "./views/releases.ts";
import { rolloutView } from "./views/rollout.ts";
import { rolloutsView } from "./views/rollouts.ts";

const main = document.getElementById("main") as HTMLElement;
const pollMs =
  Number(document.querySelector('meta[name="keel-console-poll-ms"]')?.getAttribute("content")) || 2000;

let view: View | undefined;
let busy = false;
let again = false;

async function refresh(): Promise<void> {
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  try {
    await view?.refresh();
  } finally {
    busy = false;
    if (again) {
      again = false;
      void refresh();
    }
  }
}

const ctx: ViewContext = {
  navigate(hash) {
    if (location.hash === hash) void refresh();
    else location.hash = hash;
  },
  refreshNow() {
    void refresh();
  },
};

function route(): View {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [what, name] = parts;
  document.querySelectorAll<HTMLAnchorElement>("nav a").forEach((a) => {
    if (a.dataset.view === (what ?? "rollouts")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  if (what === "rollouts" && name) return rolloutView(ctx, name);
  if (what === "fleets") return fleetsView(ctx, name);
  if (what === "releases") return releasesView();
  return rolloutsView(ctx);
}

function show(): void {
  view = route();
  fill(main, view.el);
  document.title = `${view.el.querySelector("h1")?.textContent ?? "Keel"} · Keel console`;
  main.focus({ preventScroll: true });
  void refresh().then(() => {
    document.title = `${view?.el.querySelector("h1")?.textContent ?? "Keel"} · Keel console`;
  });
}

window.addEventListener("hashchange", show);
setInterval(() => {
  if (document.visibilityState === "visible") void refresh();
}, pollMs);
setInterval(() => view?.tick?.(Date.now()), 1000);
show();
