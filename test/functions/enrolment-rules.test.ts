/**
 * The enrolment allow-list matcher (functions/rollout-api/enrolment.ts allowedBy): which rule admits which
 * signer, and that the role tag lookup is asked only when a tag rule could decide.
 */
import { describe, expect, it } from "vitest";
import { renderEnrolmentPolicy } from "../../cli/commands/enrolment.ts";
import { allowedBy } from "../../functions/rollout-api/enrolment.ts";

const session = (account: string, role: string) => ({
  arn: `arn:aws:sts::${account}:assumed-role/${role}/i-0123456789abcdef0`,
  account,
});
const none = { accounts: [], roles: [], tags: [] };

describe("enrolment allow-list", () => {
  it("an empty list admits nobody, whoever signs", async () => {
    expect(
      await allowedBy({ roleTags: undefined }, none, session("111111111111", "keel-node")),
    ).toBeUndefined();
  });

  it("matches the account, the role (path ignored, account checked), or a tag of the role", async () => {
    const asked: string[] = [];
    const deps = {
      roleTags: async (account: string, role: string): Promise<Record<string, string>> => {
        asked.push(`${account}/${role}`);
        return role === "tagged" ? { "keel:fleet": "edge" } : {};
      },
    };
    const policy = {
      accounts: ["222222222222"],
      roles: ["arn:aws:iam::111111111111:role/nodes/keel-node"],
      tags: [{ key: "keel:fleet", value: "edge" }],
    };
    expect(await allowedBy(deps, policy, session("222222222222", "anything"))).toBe("account 222222222222");
    expect(await allowedBy(deps, policy, session("111111111111", "keel-node"))).toMatch(/^role /);
    // Same role name in another account is another role.
    expect(await allowedBy(deps, policy, session("333333333333", "keel-node"))).toBeUndefined();
    expect(await allowedBy(deps, policy, session("333333333333", "tagged"))).toBe(
      "tag keel:fleet=edge on role tagged",
    );
    expect(asked).toEqual(["333333333333/keel-node", "333333333333/tagged"]);
    // An IAM user is no role session: only the account rule can admit it.
    const user = { arn: "arn:aws:iam::333333333333:user/alice", account: "333333333333" };
    expect(await allowedBy(deps, policy, user)).toBeUndefined();
  });

  it("a tag rule matches nobody where role tags cannot be read", async () => {
    const policy = { ...none, tags: [{ key: "k", value: "v" }] };
    expect(await allowedBy({ roleTags: undefined }, policy, session("111111111111", "r"))).toBeUndefined();
  });

  it("keel fleet allow-enrol shows each rule, or that nobody may enrol", () => {
    expect(renderEnrolmentPolicy("edge", none)).toMatch(/nobody \(self-enrolment is closed/);
    const text = renderEnrolmentPolicy("edge", {
      accounts: ["111111111111"],
      roles: ["arn:aws:iam::111111111111:role/keel-node"],
      tags: [{ key: "k", value: "v" }],
    });
    expect(text).toContain("account 111111111111");
    expect(text).toContain("role    arn:aws:iam::111111111111:role/keel-node");
    expect(text).toContain("tag     k=v");
  });
});
