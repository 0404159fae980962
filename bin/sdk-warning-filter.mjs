// The AWS SDK for JavaScript prints an eight-line "NodeVersionSupportWarning" on every run under Node < 22
// (Keel supports Node 20, package.json engines). It is about the SDK's own future, not about anything the
// operator asked for, so the CLI drops exactly that warning; every other warning still prints as usual.

/** The first line of the SDK's notice, as @aws-sdk/core's emitWarningIfUnsupportedVersion words it. */
const SDK_NOTICE =
  /^NodeVersionSupportWarning: The AWS SDK for JavaScript \(v3\)\n[\s\S]*will require node >=\d+/;

/** True for the SDK's Node-version notice only (as a string or as a Warning object). */
export function isSdkNodeVersionWarning(warning) {
  if (typeof warning === "string") return SDK_NOTICE.test(warning);
  if (warning instanceof Error) return SDK_NOTICE.test(warning.message);
  return false;
}

/** Wraps process.emitWarning so that the SDK's notice is never emitted (and so never printed). */
export function filterSdkNodeVersionWarning() {
  const emit = process.emitWarning;
  process.emitWarning = function emitWarning(warning, ...rest) {
    if (isSdkNodeVersionWarning(warning)) return;
    return emit.call(process, warning, ...rest);
  };
}
