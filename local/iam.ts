/**
 * The local stand-in for IAM as a Function URL with AWS_IAM auth sees it: a table of access keys, each
 * with its secret and the principal it belongs to (an IAM user, or an assumed role such as an EC2 instance
 * role's session), and the tags of each role. The wiring verifies a request's SigV4 signature with the
 * secret of the access key it names (unknown key → 403) and puts the principal in the event's
 * requestContext.authorizer.iam, as AWS does; the rollout API reads role tags from here for enrolment
 * tag rules (docs/fleets.md#enrolment).
 */
import { LOCAL_ACCOUNT, LOCAL_CREDENTIALS } from "./contracts.ts";

export interface LocalPrincipal {
  accessKeyId: string;
  secretAccessKey: string;
  /** `arn:aws:iam::<account>:user/<name>` or `arn:aws:sts::<account>:assumed-role/<role>/<session>`. */
  arn: string;
  account: string;
  /** AWS's userId: `AIDA…` for a user, `AROA…:<session>` for an assumed role. */
  userId: string;
}

/** The operator: what every local client signs with (LOCAL_CREDENTIALS). */
export const LOCAL_OPERATOR: LocalPrincipal = {
  ...LOCAL_CREDENTIALS,
  arn: `arn:aws:iam::${LOCAL_ACCOUNT}:user/keel-local`,
  account: LOCAL_ACCOUNT,
  userId: `AIDA${LOCAL_CREDENTIALS.accessKeyId}`,
};

/** A node's instance role, as a local node signs: allowed into a fleet only by that fleet's allow-list. */
export const LOCAL_NODE_ROLE = "keel-local-node";
export const LOCAL_NODE: LocalPrincipal = {
  accessKeyId: "KEELLOCALNODE",
  secretAccessKey: "keel-local-node-secret",
  arn: `arn:aws:sts::${LOCAL_ACCOUNT}:assumed-role/${LOCAL_NODE_ROLE}/i-0000000000local`,
  account: LOCAL_ACCOUNT,
  userId: "AROAKEELLOCALNODE:i-0000000000local",
};

export class LocalIam {
  private readonly principals = new Map<string, LocalPrincipal>();
  private readonly tags = new Map<string, Record<string, string>>();

  constructor(principals: LocalPrincipal[] = [LOCAL_OPERATOR, LOCAL_NODE]) {
    for (const p of principals) this.add(p);
  }

  add(p: LocalPrincipal): void {
    this.principals.set(p.accessKeyId, p);
  }

  /** The principal an access key belongs to; undefined for a key IAM never issued. */
  principal(accessKeyId: string): LocalPrincipal | undefined {
    return this.principals.get(accessKeyId);
  }

  tagRole(account: string, roleName: string, tags: Record<string, string>): void {
    this.tags.set(`${account}/${roleName}`, { ...tags });
  }

  /** As iam:ListRoleTags: the role's tags (none for a role never tagged). */
  async roleTags(account: string, roleName: string): Promise<Record<string, string>> {
    return { ...(this.tags.get(`${account}/${roleName}`) ?? {}) };
  }
}

/** A principal for an assumed role of `account` (tests: nodes of other accounts and roles). */
export function assumedRolePrincipal(
  accessKeyId: string,
  account: string,
  roleName: string,
  session: string,
): LocalPrincipal {
  return {
    accessKeyId,
    secretAccessKey: `${accessKeyId}-secret`,
    arn: `arn:aws:sts::${account}:assumed-role/${roleName}/${session}`,
    account,
    userId: `AROA${accessKeyId}:${session}`,
  };
}
