/**
 * Release manifest, signed envelope and trust root, exactly as docs/architecture.md#releases-and-trust describes.
 * Objects are strict: a field we do not understand inside signed bytes is refused rather than ignored.
 */
import { z } from "zod";
import { SemverSchema } from "./version.ts";

export const HEX64 = /^[0-9a-f]{64}$/;
export const Sha256HexSchema = z.string().regex(HEX64, "must be 64 lower-case hex characters (SHA-256)");
export const KeyIdSchema = z.string().regex(HEX64, "must be a key id: hex SHA-256 of the public key");
/** ISO 8601 UTC timestamp such as 2026-01-01T00:00:00Z (fractional seconds allowed). */
export const TimestampSchema = z.iso.datetime({ offset: false });
/** Identifiers for hardware, OS names: what AWS IoT allows in thing attributes, to keep them portable. */
export const IdentifierSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-zA-Z0-9:_.-]+$/, "may contain only letters, digits and : _ . -");
export const ObjectKeySchema = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[a-zA-Z0-9!_.*'()/-]+$/, "must be a plain S3 key (letters, digits and !_.*'()/-)")
  .refine(
    (k) => !k.split("/").some((seg) => seg === ".." || seg === "."),
    "must not contain . or .. segments",
  );

export const MAX_IMAGE_SIZE = 64 * 1024 ** 3; // 64 GiB: larger than any root filesystem slot we plan for

/** Where the chunk index lies inside the image object, and its digest (the device checks it before use). */
export const ChunkIndexRefSchema = z.strictObject({
  offset: z.number().int().min(1).max(MAX_IMAGE_SIZE),
  size: z.number().int().min(32).max(MAX_IMAGE_SIZE),
  sha256: Sha256HexSchema,
});
export type ChunkIndexRef = z.infer<typeof ChunkIndexRefSchema>;

export const ReleaseSignedSchema = z.strictObject({
  _type: z.literal("release"),
  schemaVersion: z.literal(1),
  os: IdentifierSchema,
  version: SemverSchema,
  /** Monotonic; a device refuses any counter below the one it runs (anti-rollback). */
  releaseCounter: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  compatible: z.array(IdentifierSchema).min(1).max(256),
  image: z
    .strictObject({
      key: ObjectKeySchema,
      size: z.number().int().min(1).max(MAX_IMAGE_SIZE),
      sha256: Sha256HexSchema,
      format: z.literal("squashfs"),
      /** Delta updates (docs/delta.md): the chunk index appended to the image. Optional: older manifests verify. */
      chunks: ChunkIndexRefSchema.optional(),
    })
    .refine(
      (i) => i.chunks === undefined || i.chunks.offset + i.chunks.size === i.size,
      "chunks must be the last bytes of the image (offset + size = image size)",
    ),
  createdAt: TimestampSchema,
  expiresAt: TimestampSchema,
});
export type ReleaseSigned = z.infer<typeof ReleaseSignedSchema>;

export const SignatureSchema = z.strictObject({
  keyId: KeyIdSchema,
  sig: z.string().regex(/^[0-9a-f]{128}$/, "must be 128 lower-case hex characters (ed25519 signature)"),
});
export type Signature = z.infer<typeof SignatureSchema>;

/**
 * A JSON object passed through as parsed. z.record would rebuild it by assignment, and assigning a member
 * named `__proto__` sets a prototype instead: the member would vanish before the strict schema of the
 * role could refuse it as unknown.
 */
export const JsonObjectSchema = z.custom<Record<string, unknown>>(
  (v) => typeof v === "object" && v !== null && !Array.isArray(v),
  "must be a JSON object",
);

/** `signed` is kept as raw JSON here; the role-specific schema is applied after the shape is known. */
export const EnvelopeSchema = z.strictObject({
  signed: JsonObjectSchema,
  signatures: z.array(SignatureSchema).max(64),
});
export interface Envelope<T> {
  signed: T;
  signatures: Signature[];
}

export const PublicKeySchema = z.strictObject({
  keytype: z.literal("ed25519"),
  public: z.string().regex(HEX64, "must be 64 lower-case hex characters (ed25519 public key)"),
});
export type PublicKey = z.infer<typeof PublicKeySchema>;

export const RoleSchema = z.strictObject({
  keyIds: z.array(KeyIdSchema).min(1).max(64),
  threshold: z.number().int().min(1).max(64),
});
export type Role = z.infer<typeof RoleSchema>;

export const RoleNames = ["root", "release"] as const;
export type RoleName = (typeof RoleNames)[number];

export const RootSignedSchema = z
  .strictObject({
    _type: z.literal("root"),
    schemaVersion: z.literal(1),
    version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    expiresAt: TimestampSchema,
    keys: z.record(KeyIdSchema, PublicKeySchema),
    roles: z.strictObject({ root: RoleSchema, release: RoleSchema }),
  })
  .superRefine((root, ctx) => {
    for (const name of RoleNames) {
      const role = root.roles[name];
      if (new Set(role.keyIds).size !== role.keyIds.length) {
        ctx.addIssue({ code: "custom", path: ["roles", name, "keyIds"], message: "lists a key id twice" });
      }
      if (role.threshold > role.keyIds.length) {
        ctx.addIssue({
          code: "custom",
          path: ["roles", name, "threshold"],
          message: `threshold ${role.threshold} is more than the ${role.keyIds.length} key(s) listed`,
        });
      }
      role.keyIds.forEach((id, i) => {
        if (!(id in root.keys)) {
          ctx.addIssue({
            code: "custom",
            path: ["roles", name, "keyIds", i],
            message: `key ${id} is not in keys`,
          });
        }
      });
    }
  });
export type RootSigned = z.infer<typeof RootSignedSchema>;
