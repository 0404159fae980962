/**
 * Named errors of the agent's Kubernetes coordination. Each says which node, which object and what the API
 * answered, and keeps the underlying error as `cause`.
 */
import { KeelError } from "../../core/errors.ts";

/** The `kubernetes` section of agent.json, or the kubeconfig it names, cannot be used. */
export class KubernetesConfigError extends KeelError {
  override name = "KubernetesConfigError";
}

/** The API server answered something other than what the call can handle. */
export class KubernetesApiError extends KeelError {
  override name = "KubernetesApiError";
  constructor(
    readonly operation: string,
    readonly status: number | null,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${operation}: ${status === null ? "" : `HTTP ${status}: `}${message}`, options);
  }
}

/** The API server sent a body that does not have the shape of the object asked for. */
export class KubernetesResponseError extends KeelError {
  override name = "KubernetesResponseError";
}

/** The drain did not finish within drainTimeoutSeconds; `blocking` names the pods still on the node. */
export class DrainTimeoutError extends KeelError {
  override name = "DrainTimeoutError";
  constructor(
    readonly node: string,
    readonly timeoutSeconds: number,
    readonly blocking: ReadonlyArray<{ pod: string; reason: string }>,
  ) {
    super(
      `drain of node ${node} did not finish within ${timeoutSeconds}s; blocked by ${blocking
        .map((b) => `${b.pod} (${b.reason})`)
        .join(", ")}`,
    );
  }
}

/** Right before the reboot the node was no longer cordoned, or the reboot slot was no longer ours. */
export class RebootPreconditionError extends KeelError {
  override name = "RebootPreconditionError";
}
