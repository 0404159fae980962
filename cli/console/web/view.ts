/// <reference lib="dom" />
/** What every view of the console is: an element, a refresh from the API, and an optional clock tick. */

export interface View {
  el: HTMLElement;
  /** Reads the API again and updates the page in place (filters, focus and open dialogs survive). */
  refresh(): Promise<void>;
  /** Once a second, for countdowns and "… ago" texts. */
  tick?(now: number): void;
}

export interface ViewContext {
  navigate(hash: string): void;
  /** Refresh the current view now (after an action) rather than at the next poll. */
  refreshNow(): void;
}

/** Replaces a container's children; used for the parts of a view that follow the data. */
export function fill(el: Element, ...children: Array<Node | string>): void {
  el.replaceChildren(...children);
}
