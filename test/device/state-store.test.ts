import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { describeError } from "../../core/errors.ts";
import { StateStoreError } from "../../device/errors.ts";
import { initialState, StateStore } from "../../device/state-store.ts";

describe("StateStore", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-state-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("starts Idle on a node that never saved", async () => {
    expect(await new StateStore(dir).load()).toEqual(initialState());
  });

  it("round-trips a record and leaves no temp file behind", async () => {
    // Prepare
    const store = new StateStore(dir);
    const rec = { ...initialState(), state: "Downloading" as const, entries: 2 };
    // Act
    await store.save(rec);
    // Assess
    expect(await store.load()).toEqual(rec);
    expect(await readdir(dir)).toEqual(["state.json"]);
  });

  it("keeps the previous record when a crash left only a half-written temp file", async () => {
    // Prepare: a good record, then the debris of a save cut before its rename
    const store = new StateStore(dir);
    const rec = { ...initialState(), state: "Verifying" as const };
    await store.save(rec);
    const full = JSON.stringify({ ...rec, state: "Activating" });
    await writeFile(join(dir, ".state.json.abc123.tmp"), full.slice(0, full.length / 2));
    // Act / Assess: the rename is the commit point, so the reader sees the old record whole
    expect((await store.load()).state).toBe("Verifying");
  });

  it("loads a record saved before rolled-back versions were remembered, with none remembered", async () => {
    const { rolledBack: _dropped, ...older } = { ...initialState(), state: "Rebooting" as const };
    await writeFile(join(dir, "state.json"), JSON.stringify(older));
    expect(await new StateStore(dir).load()).toMatchObject({ state: "Rebooting", rolledBack: [] });
  });

  it("refuses a damaged record with the file name and the field at fault", async () => {
    await writeFile(join(dir, "state.json"), JSON.stringify({ ...initialState(), state: "Dancing" }));
    const err = await new StateStore(dir).load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateStoreError);
    expect(String(describeError(err))).toMatch(/state\.json.*state/);
  });

  it("writes through a temp file and rename (the target is never opened for writing)", async () => {
    // Prepare: make the target read-only content we can recognise; a rename replaces the inode
    const store = new StateStore(dir);
    await store.save(initialState());
    const before = await readFile(join(dir, "state.json"), "utf8");
    // Act
    await store.save({ ...initialState(), entries: 1 });
    // Assess
    const after = await readFile(join(dir, "state.json"), "utf8");
    expect(after).not.toBe(before);
    expect(JSON.parse(after).entries).toBe(1);
  });
});
