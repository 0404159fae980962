/// <reference lib="dom" />
/** Published releases: VERIFIED or REJECTED (and why), release counter, image size, signers, expiry. */
import { apiGet, describeError } from "../api.ts";
import { sortVersions } from "../charts.ts";
import { bytes, dataTable, errorBox, field, h, statusBadge, time } from "../dom.ts";
import type { ReleaseRecord } from "../types.ts";
import { fill, type View } from "../view.ts";

export function releasesView(): View {
  let releases: ReleaseRecord[] = [];
  const errors = h("div");
  const counters = h("p", { className: "counters" });
  const status = h(
    "select",
    {},
    h("option", { value: "" }, "All"),
    h("option", { value: "VERIFIED" }, "VERIFIED"),
    h("option", { value: "REJECTED" }, "REJECTED"),
  );
  const rows = h("tbody");

  const render = () => {
    const verified = releases.filter((r) => r.status === "VERIFIED").length;
    fill(
      counters,
      `${releases.length} release(s): ${verified} VERIFIED, ${releases.length - verified} REJECTED`,
    );
    const order = sortVersions(releases.map((r) => r.version));
    const shown = [...releases]
      .filter((r) => !status.value || r.status === status.value)
      .sort((a, b) => order.indexOf(a.version) - order.indexOf(b.version));
    fill(
      rows,
      ...shown.map((r) =>
        h(
          "tr",
          { "data-release": r.version, "data-status": r.status },
          h("th", { scope: "row" }, r.version),
          h("td", {}, statusBadge(r.status)),
          h("td", {}, r.releaseCounter ?? "–"),
          h("td", {}, bytes(r.imageSize)),
          h(
            "td",
            {},
            r.signers ? `${r.signers.length} key(s)${r.rootVersion ? `, root v${r.rootVersion}` : ""}` : "–",
          ),
          h("td", {}, (r.compatible ?? []).join(", ") || "–"),
          h("td", {}, time(r.registeredAt, r.registeredAt.replace("T", " ").slice(0, 16))),
          h("td", {}, r.expiresAt ? time(r.expiresAt, r.expiresAt.slice(0, 10)) : "–"),
          h("td", { className: "reason" }, r.reason ?? ""),
        ),
      ),
    );
  };
  status.addEventListener("change", render);

  const el = h(
    "section",
    { className: "view releases", "aria-labelledby": "releases-h" },
    h("h1", { id: "releases-h" }, "Releases"),
    errors,
    counters,
    h("div", { className: "toolbar" }, field("Status", status)),
    dataTable(
      "Published releases, newest version first",
      [
        "Version",
        "Status",
        "Counter",
        "Image size",
        "Signed by",
        "Compatible",
        "Registered",
        "Expires",
        "Reason",
      ],
      rows,
    ),
  );

  return {
    el,
    async refresh() {
      try {
        releases = (await apiGet<{ releases: ReleaseRecord[] }>("/releases")).releases;
        fill(errors);
        render();
      } catch (err) {
        fill(errors, errorBox(describeError(err)));
      }
    },
  };
}
