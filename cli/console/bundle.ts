/**
 * The web app, bundled by esbuild in memory when the console starts: one script and one stylesheet, with
 * everything they use inlined, so the page fetches nothing from any other host. Built once per process.
 */
import { join } from "node:path";
import { build } from "esbuild";
import { describeError } from "../../core/errors.ts";
import { ConsoleBundleError } from "./errors.ts";

export interface WebBundle {
  js: Buffer;
  css: Buffer;
}

const WEB = join(import.meta.dirname, "web");

let cached: Promise<WebBundle> | undefined;

async function bundle(): Promise<WebBundle> {
  try {
    const r = await build({
      entryPoints: { app: join(WEB, "main.ts"), style: join(WEB, "style.css") },
      bundle: true,
      write: false,
      outdir: "/keel-console",
      format: "esm",
      platform: "browser",
      target: ["es2022"],
      minify: true,
      legalComments: "none",
      logLevel: "silent",
    });
    const file = (ext: string) => {
      const f = r.outputFiles.find((o) => o.path.endsWith(ext));
      if (!f) throw new ConsoleBundleError(`esbuild produced no ${ext} file`);
      return Buffer.from(f.contents);
    };
    return { js: file(".js"), css: file(".css") };
  } catch (err) {
    if (err instanceof ConsoleBundleError) throw err;
    throw new ConsoleBundleError(`cannot bundle the console's web app: ${describeError(err)}`, {
      cause: err,
    });
  }
}

export function webBundle(): Promise<WebBundle> {
  cached ??= bundle();
  // A failed build is not cached: the next start tries again.
  cached.catch(() => {
    cached = undefined;
  });
  return cached;
}
