#!/usr/bin/env node
// TypeScript 7 has no JS API and we ship no compiled JS: load the CLI through tsx's in-process loader.
import { register } from "tsx/esm/api";
import { filterSdkNodeVersionWarning } from "./sdk-warning-filter.mjs";

// Before anything loads the AWS SDK: its Node-version notice is noise on every command's stderr.
filterSdkNodeVersionWarning();
register();
await import("../cli/main.ts");
