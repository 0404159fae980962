/**
 * Finds citations in the repository's text files and reports the ones that do not resolve
 * (docs/style.md#rules): a cited repository path that names no tracked file or folder, a `#anchor` that is
 * no heading of the cited Markdown file (GitHub's slug rules), a section (`docs/iot-jobs.md §1.2`) that
 * is not there, and any citation of something outside the repository: a relative path climbing out of it
 * to the shared notes, an absolute path into the machine's work tree, the design notes and reference pages
 * that were never part of it (OUTSIDE_PATTERNS). A bare `§n.m` is checked against the one docs page its
 * file cites with a section number, if there is exactly one (the conformance suite names its tests so).
 *
 * The extractor is conservative so that ordinary code is not flagged: a path counts as a citation only
 * when its first segment is a top-level folder the repository tracks and it does not continue a longer
 * path or URL (so `/usr/lib/keel/…`, `https://…/device/…` and `./local/x.ts` imports are left alone;
 * tsc checks imports). Markdown links are checked only in Markdown files, outside code fences.
 */
import { posix } from "node:path";

/** Every tracked path, with its text, or null for a file that is not scanned (binary, lock file, snapshot). */
export type Tree = ReadonlyMap<string, string | null>;

export interface CitationProblem {
  file: string;
  line: number;
  cited: string;
  reason: string;
}

/** Names of the notes kept outside the repository; citing them sends readers nowhere. */
const OUTSIDE_PATTERNS: ReadonlyArray<{ pattern: RegExp; reason: string }> = [
  { pattern: /(?:\.\.\/)+shared\b[\w./-]*/g, reason: "is outside the repository" },
  { pattern: /(?<![\w./-])\/work\/[\w./-]*/g, reason: "is outside the repository" },
  { pattern: /\b(?:DESIGN|STYLE)\.md\b/g, reason: "is not part of the repository; cite a page of docs/" },
  { pattern: /\breference\/[\w-]+\.md\b/g, reason: "is not part of the repository; cite a page of docs/" },
  { pattern: /\breference §[\d.]+/g, reason: "names no document of the repository; cite a page of docs/" },
];

/** A path inside the repository: letters, digits, `_ . - /`, optionally `#anchor`. */
const PATH_CHARS = String.raw`[\w.-]+(?:/[\w.-]*)*`;
const SECTION = String.raw`(?:\s+§(\d+(?:\.\d+)*))?`;

/** GitHub's heading slug: lower case, punctuation dropped (letters, digits, `_`, `-` and spaces kept), each space a hyphen. */
export function githubSlug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}_\- ]/gu, "")
    .replace(/ /g, "-");
}

/** Lines of a Markdown file with a flag for those inside ``` or ~~~ fences. */
function markdownLines(text: string): Array<{ text: string; fenced: boolean }> {
  let fence: string | null = null;
  return text.split("\n").map((line) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (marker !== undefined) {
      if (fence === null) fence = marker[0] as string;
      else if (marker[0] === fence) fence = null;
      return { text: line, fenced: true };
    }
    return { text: line, fenced: fence !== null };
  });
}

/** The anchors GitHub renders for a Markdown file: heading slugs (duplicates get -1, -2 …) and explicit ids. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text, fenced } of markdownLines(markdown)) {
    if (fenced) continue;
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text)?.[1];
    if (heading !== undefined) {
      // Links render as their text; the slug is taken from what is rendered.
      const rendered = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
      const base = githubSlug(rendered);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(m[1] as string);
  }
  return anchors;
}

/** Does `markdown` have section `number`: a heading or a numbered bold item starting with it? */
function hasSection(markdown: string, number: string): boolean {
  const n = number.replace(/\./g, "\\.");
  const start = new RegExp(String.raw`^(?:#{1,6}\s+|\d+\.\s+\*\*)${n}(?:\.|\s)`);
  return markdownLines(markdown).some((l) => !l.fenced && start.test(l.text));
}

class Resolver {
  private readonly dirs = new Set<string>();
  readonly topLevel = new Set<string>();
  private readonly basenames = new Set<string>();
  private readonly anchorCache = new Map<string, Set<string>>();

  constructor(private readonly tree: Tree) {
    for (const path of tree.keys()) {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) this.dirs.add(parts.slice(0, i).join("/"));
      if (parts.length > 1) this.topLevel.add(parts[0] as string);
      this.basenames.add(parts[parts.length - 1] as string);
    }
  }

  exists(path: string): boolean {
    const p = path.replace(/\/+$/, "");
    return this.tree.has(p) || this.dirs.has(p);
  }

  isBasename(name: string): boolean {
    return this.basenames.has(name);
  }

  text(path: string): string | null {
    return this.tree.get(path) ?? null;
  }

  anchors(path: string): Set<string> {
    let a = this.anchorCache.get(path);
    if (a === undefined) {
      a = anchorsOf(this.text(path) ?? "");
      this.anchorCache.set(path, a);
    }
    return a;
  }
}

/**
 * Checks one cited target (a repository path, maybe with `#anchor`) and returns why it does not resolve,
 * or null when it does.
 */
function checkTarget(r: Resolver, path: string, anchor: string | undefined, section: string | undefined) {
  if (!r.exists(path)) return `${path} does not exist`;
  if (anchor !== undefined && path.endsWith(".md") && !r.anchors(path).has(anchor)) {
    return `${path} has no heading #${anchor}`;
  }
  if (section !== undefined && path.endsWith(".md") && !hasSection(r.text(path) ?? "", section)) {
    return `${path} has no section §${section}`;
  }
  return null;
}

/** Path citations anywhere in a text: `device/boot/grub.cfg`, `docs/agent.md#commands`, `docs/iot-jobs.md §1.2`. */
function pathProblems(r: Resolver, file: string, lineNo: number, line: string): CitationProblem[] {
  const problems: CitationProblem[] = [];
  // Not preceded by a path or word character, so URLs, absolute paths and `./x` imports are skipped.
  const re = new RegExp(String.raw`(?<![\w./\-@$])(${PATH_CHARS})(?:#([\w-]+))?${SECTION}`, "g");
  for (const m of line.matchAll(re)) {
    let raw = m[1] as string;
    const top = raw.split("/")[0] as string;
    if (!raw.includes("/") || !r.topLevel.has(top)) continue;
    // A glob or template (`conformance-*.test.ts`, `test/<area>`, `${dir}`) cites the folder it is in.
    const next = line[(m.index ?? 0) + raw.length] ?? "";
    if ("*{<$[".includes(next) && next !== "") raw = raw.slice(0, raw.lastIndexOf("/") + 1);
    // Sentence punctuation after a path is not part of it.
    const path = raw.replace(/[.]+$/, "");
    const reason = checkTarget(r, path, m[2], m[3]);
    if (reason !== null) problems.push({ file, line: lineNo, cited: m[0].trim(), reason });
  }
  return problems;
}

/** Bare Markdown file names (no folder) that are no file of the repository. */
function bareMarkdownProblems(r: Resolver, file: string, lineNo: number, line: string): CitationProblem[] {
  const problems: CitationProblem[] = [];
  for (const m of line.matchAll(/(?<![\w./\-@$#])([A-Za-z][\w-]*\.md)\b(?![\w/-])/g)) {
    const name = m[1] as string;
    if (!r.isBasename(name)) {
      problems.push({ file, line: lineNo, cited: name, reason: `${name} is no file of the repository` });
    }
  }
  return problems;
}

/** Relative Markdown links `[text](../x.md#anchor)`, resolved against the linking file's folder. */
function linkProblems(r: Resolver, file: string, lineNo: number, line: string): CitationProblem[] {
  const problems: CitationProblem[] = [];
  for (const m of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1] as string;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: … are not repository paths
    const [pathPart = "", anchor] = target.split("#", 2);
    if (pathPart === "") {
      if (anchor !== undefined && !r.anchors(file).has(anchor)) {
        problems.push({ file, line: lineNo, cited: target, reason: `${file} has no heading #${anchor}` });
      }
      continue;
    }
    const resolved = posix.normalize(posix.join(posix.dirname(file), pathPart));
    if (resolved.startsWith("../") || resolved === ".." || posix.isAbsolute(pathPart)) {
      problems.push({ file, line: lineNo, cited: target, reason: `${target} is outside the repository` });
      continue;
    }
    const reason = checkTarget(r, resolved, anchor, undefined);
    if (reason !== null) problems.push({ file, line: lineNo, cited: target, reason });
  }
  return problems;
}

/** Lines that number sections of outside specifications, whose `§` are not ours to check. */
const FOREIGN_SECTIONS = /\b(?:RFC|TUF|semver|SemVer)\b/;

/**
 * The docs page a file's bare `§n.m` refer to: the one page it cites with a section number, if exactly one
 * (a file whose header says `docs/iot-jobs.md §1, §2` goes on with `(§2)`).
 */
function sectionPageOf(text: string): string | null {
  const pages = new Set<string>();
  for (const m of text.matchAll(/(?<![\w./-])(docs\/[\w/-]+\.md)\s+§\d/g)) pages.add(m[1] as string);
  return pages.size === 1 ? ([...pages][0] as string) : null;
}

/** Bare `§n.m` in a file whose section page is known: that page must have the section. */
function bareSectionProblems(
  r: Resolver,
  page: string,
  file: string,
  lineNo: number,
  line: string,
): CitationProblem[] {
  if (FOREIGN_SECTIONS.test(line)) return [];
  const problems: CitationProblem[] = [];
  for (const m of line.matchAll(/(?<!\.md\s*)§(\d+(?:\.\d+)*)/g)) {
    const section = m[1] as string;
    if (!hasSection(r.text(page) ?? "", section)) {
      problems.push({
        file,
        line: lineNo,
        cited: m[0],
        reason: `${page} (the page this file cites) has no section §${section}`,
      });
    }
  }
  return problems;
}

/** Every citation in the tree that does not resolve, in file and line order. */
export function findCitationProblems(tree: Tree): CitationProblem[] {
  const r = new Resolver(tree);
  const problems: CitationProblem[] = [];
  for (const [file, text] of tree) {
    if (text === null) continue;
    const isMarkdown = file.endsWith(".md");
    const sectionPage = isMarkdown ? null : sectionPageOf(text);
    const lines = isMarkdown
      ? markdownLines(text)
      : text.split("\n").map((t) => ({ text: t, fenced: false }));
    lines.forEach(({ text: original, fenced }, i) => {
      const lineNo = i + 1;
      let line = original;
      if (isMarkdown && !fenced) {
        problems.push(...linkProblems(r, file, lineNo, line));
        // Link targets are checked; blank them so they are not read again as bare paths.
        line = line.replace(/\]\(([^)]*)\)/g, (found) => `](${" ".repeat(found.length - 3)})`);
      }
      for (const { pattern, reason } of OUTSIDE_PATTERNS) {
        for (const m of line.matchAll(pattern)) {
          problems.push({ file, line: lineNo, cited: m[0], reason: `${m[0]} ${reason}` });
        }
        // Blank what was reported so the other extractors do not report it again.
        line = line.replace(pattern, (found) => " ".repeat(found.length));
      }
      problems.push(...pathProblems(r, file, lineNo, line));
      problems.push(...bareMarkdownProblems(r, file, lineNo, line));
      if (sectionPage !== null && r.exists(sectionPage)) {
        problems.push(...bareSectionProblems(r, sectionPage, file, lineNo, line));
      }
    });
  }
  return problems;
}
