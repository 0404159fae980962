/// <reference lib="dom" />
/**
 * The confirmation every action goes through: a modal <dialog> (focus stays inside, Escape cancels) that
 * says what will happen. Cancel has the focus first, so a stray Enter changes nothing.
 */
import { type Child, field, h } from "./dom.ts";

export interface ConfirmOptions {
  title: string;
  body: Child[];
  confirm: string;
  danger?: boolean;
  /** Ask for an optional reason (recorded in the timeline and the audit log). */
  reason?: boolean;
}

/** Resolves with the reason typed (possibly empty) when confirmed, null when cancelled. */
export function confirmDialog(o: ConfirmOptions): Promise<{ reason: string } | null> {
  return new Promise((resolve) => {
    const reason = o.reason
      ? h("input", { type: "text", name: "reason", maxlength: 1000, autocomplete: "off" })
      : null;
    const cancel = h("button", { type: "button", className: "secondary" }, "Cancel");
    const ok = h("button", { type: "button", className: o.danger ? "danger" : "primary" }, o.confirm);
    const titleId = `dlg-${Math.random().toString(36).slice(2, 9)}`;
    const dialog = h(
      "dialog",
      { className: "confirm", "aria-labelledby": titleId },
      h("h2", { id: titleId }, o.title),
      h("div", { className: "confirm-body" }, ...o.body),
      reason ? field("Reason (optional, goes into the timeline and audit log)", reason) : null,
      h("div", { className: "actions" }, cancel, ok),
    );
    let result: { reason: string } | null = null;
    const close = (r: { reason: string } | null) => {
      result = r;
      dialog.close();
    };
    cancel.addEventListener("click", () => close(null));
    ok.addEventListener("click", () => close({ reason: reason?.value.trim() ?? "" }));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
