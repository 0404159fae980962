#!/usr/bin/env node
// TypeScript 7 has no JS API and we ship no compiled JS: load the CLI through tsx's in-process loader.
import { register } from "tsx/esm/api";

register();
await import("../device/cli.ts");
