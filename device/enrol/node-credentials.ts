/**
 * The node's AWS identity for `keel-agent enroll`: the part of the SDK's default credential chain a node
 * has — environment variables first (AWS_ACCESS_KEY_ID …; what local runs and tests set), then the EC2
 * instance role through the instance metadata service (IMDSv2). The full chain (SSO, profiles, STS, …)
 * would add ~8 MB of RSS to every start of the agent, daemon included (docs/guarantees.md memory budget),
 * for sources a node never has. The environment is read here rather than by the SDK's provider, which
 * alone brings in @aws-sdk/core.
 */
import { fromInstanceMetadata } from "@smithy/credential-provider-imds";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";

/** AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), as the SDK reads them; both or none. */
export function credentialsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): AwsCredentialIdentity | undefined {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return undefined;
  return {
    accessKeyId,
    secretAccessKey,
    ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
  };
}

export function nodeCredentials(env = process.env): AwsCredentialIdentityProvider {
  const fromEnv = credentialsFromEnv(env);
  if (fromEnv) return async () => fromEnv;
  // IMDSv2, with the SDK's own retries and refresh: the instance role's rotating credentials.
  return fromInstanceMetadata({ maxRetries: 3, timeout: 2000 });
}
