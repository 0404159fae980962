/**
 * The release bucket (docs/releases.md): `releases/<version>/image.squashfs` and `release.json`,
 * `trust/root.<n>.json`. Versioned, encrypted, private, TLS only, with server access logs in a second
 * bucket and old object versions expired after a while.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";

/** Where signed releases live; the presign role and the S3 event both key off it. */
export const RELEASES_PREFIX = "releases/";
export const RELEASE_MANIFEST_SUFFIX = "release.json";
/** Trust roots: `trust/root.<n>.json`. */
export const TRUST_PREFIX = "trust/";

export interface ReleaseBucketProps {
  /** Retain keeps both buckets (and everything in them) when the stack is deleted; destroy empties them. */
  readonly removalPolicy: RemovalPolicy;
  /**
   * Physical name of the release bucket.
   * @default - a name CloudFormation generates
   */
  readonly bucketName?: string;
  /**
   * Days a replaced or deleted object version is kept before S3 expires it.
   * @default - 90
   */
  readonly noncurrentVersionDays?: number;
}

export class ReleaseBucket extends Construct {
  readonly bucket: s3.Bucket;
  readonly accessLogs: s3.Bucket;

  constructor(scope: Construct, id: string, props: ReleaseBucketProps) {
    super(scope, id);
    // Let S3 log delivery write through a bucket policy instead of the legacy LogDeliveryWrite ACL, so
    // the log bucket can keep ACLs disabled (set here, before the buckets exist, to scope it to them).
    this.node.setContext("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", true);
    const destroy = props.removalPolicy === RemovalPolicy.DESTROY;
    const common = {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: props.removalPolicy,
      // A versioned bucket with objects cannot be deleted by CloudFormation; "destroy" means empty it first.
      autoDeleteObjects: destroy,
    };

    this.accessLogs = new s3.Bucket(this, "AccessLogs", {
      ...common,
      // S3 log delivery writes with the bucket owner's ownership; ACLs stay off.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: "expire-access-logs", expiration: Duration.days(365) }],
    });

    // Object keys come from the CLI and the functions, which use SSE-S3 (no KMS key to grant to IoT's
    // presign role or to devices fetching presigned URLs).
    this.bucket = new s3.Bucket(this, "Bucket", {
      ...common,
      bucketName: props.bucketName,
      versioned: true,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: "release-bucket/",
      lifecycleRules: [
        {
          id: "expire-old-versions",
          noncurrentVersionExpiration: Duration.days(props.noncurrentVersionDays ?? 90),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
    });
  }
}
