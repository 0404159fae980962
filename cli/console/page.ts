/** The console's HTML: a shell the bundled app fills in. No inline script or style (the CSP forbids both). */

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

/** A keel in profile: the project's mark, served by the console itself so the browser asks no one else. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#0b3954"/><path d="M5 12h22l-4 9H9z" fill="#fff"/><path d="M15 21h2v6h-2z" fill="#bfd7ea"/></svg>`;

export function indexPage(o: { token: string; target: string; pollMs: number }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="keel-console-token" content="${escapeHtml(o.token)}">
<meta name="keel-console-poll-ms" content="${o.pollMs}">
<title>Keel console</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/app.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <span class="brand">Keel console</span>
  <nav aria-label="Views">
    <a href="#/rollouts" data-view="rollouts">Rollouts</a>
    <a href="#/fleets" data-view="fleets">Fleets</a>
    <a href="#/releases" data-view="releases">Releases</a>
  </nav>
  <span class="target" title="Every request is signed by the console server with your credentials">${escapeHtml(o.target)}</span>
</header>
<main id="main" tabindex="-1"><p>Loading…</p></main>
<div id="announce" class="visually-hidden" role="status" aria-live="polite"></div>
<script type="module" src="/app.js"></script>
</body>
</html>
`;
}

export function forbiddenPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keel console: token needed</title></head>
<body><main><h1>Open the console's full URL</h1>
<p>This console serves its page only to the URL <code>keel console</code> printed when it started (it carries a
token, so that no other user or web site on this machine can drive it). Copy that URL from the terminal.</p>
</main></body></html>
`;
}
