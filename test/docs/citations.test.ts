/**
 * Every citation in the repository resolves (docs/style.md#rules): the extractor's own cases on small
 * in-memory trees, then the whole tracked tree.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { anchorsOf, type CitationProblem, findCitationProblems, githubSlug, type Tree } from "./citations.ts";

// The notes that were never part of the repository, spelled in pieces so that this file, whose fixtures cite
// them on purpose, is not itself a citation of them.
const SHARED = ["..", "shared"].join("/");
const DESIGN = ["DESIGN", "md"].join(".");
const STYLE = ["STYLE", "md"].join(".");
const AB_NOTES = ["ab-boot", "md"].join(".");
const IOT_NOTES = ["aws-iot-jobs", "md"].join(".");

const ROOT = join(import.meta.dirname, "..", "..");
/** This file cites missing and outside paths on purpose, as fixtures. */
const SELF = relative(ROOT, import.meta.filename)
  .split("\\")
  .join("/");

const PAGE = [
  "# Agent",
  "",
  "## Configuration (`agent.json`)",
  "",
  "## 1.2 Requests and responses",
  "",
  "```sh",
  "# not a heading: a shell comment in a fence",
  "```",
  "",
  "## Configuration (`agent.json`)",
].join("\n");

/** A small tree: the files exist, `fixture` holds `text`. */
function tree(text: string, fixture = "device/agent.ts"): Tree {
  return new Map<string, string | null>([
    ["docs/agent.md", PAGE],
    ["device/boot/grub.cfg", "# grub"],
    ["device/image.bin", null],
    [fixture, text],
  ]);
}

const reasons = (problems: CitationProblem[]) => problems.map((p) => p.reason);

describe("githubSlug and anchorsOf", () => {
  it("follow GitHub: lower case, punctuation dropped, spaces to hyphens, duplicates numbered", () => {
    // Prepare / Act
    const anchors = anchorsOf(PAGE);

    // Assess
    expect(githubSlug("What a job goes through")).toBe("what-a-job-goes-through");
    expect(githubSlug("U-Boot slot selection")).toBe("u-boot-slot-selection");
    expect(githubSlug("Keys & roots")).toBe("keys--roots");
    expect([...anchors]).toEqual([
      "agent",
      "configuration-agentjson",
      "12-requests-and-responses",
      "configuration-agentjson-1",
    ]);
  });
});

describe("findCitationProblems on fixtures", () => {
  it("accepts citations that resolve: files, folders, anchors, sections and relative links", () => {
    // Prepare
    const code = [
      "// see docs/agent.md, docs/agent.md#configuration-agentjson and docs/agent.md §1.2.",
      "// the script device/boot/grub.cfg lives in device/boot/; the image is device/image.bin",
      "// device/boot/*.cfg and device/<name>.ts cite the folder they are in",
    ].join("\n");
    const markdown =
      "# Other\n\nSee [the agent](agent.md#configuration-agentjson-1), [boot](../device/boot/), [top](#other).";

    // Act
    const problems = [
      ...findCitationProblems(tree(code)),
      ...findCitationProblems(tree(markdown, "docs/other.md")),
    ];

    // Assess
    expect(problems).toEqual([]);
  });

  it("reports a cited file that does not exist, with file and line", () => {
    const problems = findCitationProblems(tree("// ok\n// as docs/missing.md says\n"));

    expect(problems).toEqual([
      {
        file: "device/agent.ts",
        line: 2,
        cited: "docs/missing.md",
        reason: "docs/missing.md does not exist",
      },
    ]);
  });

  it("reports the folder of a glob that does not exist", () => {
    const problems = findCitationProblems(tree("// every device/nowhere/*.test.ts\n"));

    expect(reasons(problems)).toEqual(["device/nowhere/ does not exist"]);
  });

  it("reports an anchor that is no heading, and a section that is not there", () => {
    const problems = findCitationProblems(tree("// docs/agent.md#configuration and docs/agent.md §7.1\n"));

    expect(reasons(problems)).toEqual([
      "docs/agent.md has no heading #configuration",
      "docs/agent.md has no section §7.1",
    ]);
  });

  it("does not take a fenced shell comment for a heading", () => {
    const problems = findCitationProblems(
      tree("// docs/agent.md#not-a-heading-a-shell-comment-in-a-fence\n"),
    );

    expect(reasons(problems)).toEqual([
      "docs/agent.md has no heading #not-a-heading-a-shell-comment-in-a-fence",
    ]);
  });

  it("checks bare § numbers against the one docs page a file cites with sections", () => {
    // Prepare
    const code = [
      "// The data plane (docs/agent.md §1.2).",
      "// answered as §1.2 says; §3 does not exist",
      "// RFC 8785 §3.2.3 is someone else's section",
    ].join("\n");

    // Act
    const problems = findCitationProblems(tree(code));

    // Assess
    expect(problems.map((p) => [p.line, p.cited])).toEqual([[2, "§3"]]);
  });

  it("leaves bare § numbers alone when a file cites no page, or several, with sections", () => {
    const none = findCitationProblems(tree("// see docs/agent.md; §9 of some spec\n"));
    const several = findCitationProblems(
      tree("// docs/agent.md §1.2 and docs/other.md §1\n// §9\n", "device/x.ts"),
    );

    expect(none).toEqual([]);
    expect(reasons(several)).toEqual(["docs/other.md does not exist"]);
  });

  it("reports paths outside the repository and notes that were never part of it", () => {
    // Prepare
    const text = [
      `// rules in ${SHARED}/reference/${IOT_NOTES}`,
      `// see /work/shared/${DESIGN}`,
      `// (${DESIGN} "Cloud"), ${STYLE} item 3, reference/${AB_NOTES} §6, reference §1.4`,
    ].join("\n");

    // Act
    const problems = findCitationProblems(tree(text));

    // Assess
    expect(problems.map((p) => [p.line, p.cited])).toEqual([
      [1, `${SHARED}/reference/${IOT_NOTES}`],
      [2, `/work/shared/${DESIGN}`],
      [3, DESIGN],
      [3, STYLE],
      [3, `reference/${AB_NOTES}`],
      [3, "reference §1.4"],
    ]);
  });

  it("reports bad Markdown links: missing file, bad anchor, outside the repository", () => {
    // Prepare
    const markdown = [
      `[gone](missing.md) [bad](agent.md#nope) [out](../${SHARED}/STYLE.txt) [self](#nowhere)`,
      "[web](https://example.com/docs/x.md) is not a repository path",
    ].join("\n");

    // Act
    const problems = findCitationProblems(tree(markdown, "docs/other.md"));

    // Assess
    expect(reasons(problems)).toEqual([
      "docs/missing.md does not exist",
      "docs/agent.md has no heading #nope",
      `../${SHARED}/STYLE.txt is outside the repository`,
      "docs/other.md has no heading #nowhere",
    ]);
  });

  it("reports a bare Markdown file name that is no file of the repository", () => {
    const problems = findCitationProblems(tree(`// as ${AB_NOTES} explains; agent.md is fine\n`));

    expect(reasons(problems)).toEqual([`${AB_NOTES} is no file of the repository`]);
  });

  it("leaves ordinary code alone: imports, absolute paths, URLs, S3 keys, URL routes", () => {
    // Prepare
    const code = [
      'import { x } from "./local/cloud.ts";',
      'import { y } from "../../core/schemas.ts";',
      "// installed as /usr/lib/keel/keel-agent.mjs; kernel in /boot/vmlinuz",
      "// https://github.com/rauc/rauc/blob/master/docs/integration.rst",
      "// releases/1.0.0/image.squashfs and trust/root.1.json in the bucket",
      "// GET /rollouts/{id} and POST /fleets/{fleet}/things",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the fixture is source text holding a template literal
      "const p = `test/${name}`; // a folder that exists",
      "// grub-core/lib/envblk.c in GRUB's sources",
    ].join("\n");

    // Act
    const problems = findCitationProblems(tree(code));

    // Assess
    expect(problems).toEqual([]);
  });
});

/** The tracked tree: text files with their contents; lock file, snapshots, binaries and this file unread. */
function trackedTree(): Tree {
  const paths = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    .filter((p) => p !== "");
  const files = new Map<string, string | null>();
  for (const path of paths) {
    if (path === SELF || path === "package-lock.json" || path.includes("__snapshots__/")) {
      files.set(path, null);
      continue;
    }
    // A tracked file deleted in the work tree is gone for readers too.
    if (!existsSync(join(ROOT, path))) continue;
    const bytes = readFileSync(join(ROOT, path));
    files.set(path, bytes.includes(0) ? null : bytes.toString("utf8"));
  }
  return files;
}

describe("the repository", () => {
  it("cites only files, headings and sections that exist, and nothing outside itself", () => {
    // Prepare
    const tree = trackedTree();

    // Act
    const problems = findCitationProblems(tree);

    // Assess
    expect(tree.size).toBeGreaterThan(100);
    expect(problems.map((p) => `${p.file}:${p.line}: ${p.reason}`)).toEqual([]);
  });
});
