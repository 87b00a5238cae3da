# The storage tiers: hot (working files, versioned, old versions expire) and archive (moved to
# Glacier Deep Archive, replicated to a second region). Bifrost reaches them as
# BIFROST_HOT_ROOT=s3://<hot>/ and BIFROST_ARCHIVE_ROOT=s3://<archive>/ (s3fs).
locals {
  buckets = {
    hot     = "${local.name}-hot-${data.aws_caller_identity.current.account_id}"
    archive = "${local.name}-archive-${data.aws_caller_identity.current.account_id}"
    logs    = "${local.name}-access-logs-${data.aws_caller_identity.current.account_id}"
  }
}

resource "aws_s3_bucket" "tier" {
  for_each = { hot = local.buckets.hot, archive = local.buckets.archive }
  bucket   = each.value
  # checkov links the companions below (for_each over this resource) to one instance only and
  # reports the other as lacking them; tests/infra/test_iac.py checks each companion covers both.
  #checkov:skip=CKV_AWS_18:Access logging: aws_s3_bucket_logging.tier covers every tier bucket
  #checkov:skip=CKV_AWS_21:Versioning: aws_s3_bucket_versioning.tier covers every tier bucket
  #checkov:skip=CKV_AWS_144:Replication: aws_s3_bucket_replication_configuration.tier covers every tier bucket
  #checkov:skip=CKV_AWS_145:KMS encryption: aws_s3_bucket_server_side_encryption_configuration.tier covers every tier bucket
  #checkov:skip=CKV2_AWS_6:Public access block: aws_s3_bucket_public_access_block.tier covers every tier bucket
  #checkov:skip=CKV2_AWS_62:Event notifications: aws_s3_bucket_notification.tier covers every tier bucket
}

resource "aws_s3_bucket_versioning" "tier" {
  for_each = aws_s3_bucket.tier
  bucket   = aws_s3_bucket.tier[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "tier" {
  for_each = aws_s3_bucket.tier
  bucket   = aws_s3_bucket.tier[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "tier" {
  for_each                = aws_s3_bucket.tier
  bucket                  = aws_s3_bucket.tier[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_logging" "tier" {
  for_each      = aws_s3_bucket.tier
  bucket        = aws_s3_bucket.tier[each.key].id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "${each.key}/"
}

resource "aws_s3_bucket_notification" "tier" {
  for_each    = aws_s3_bucket.tier
  bucket      = aws_s3_bucket.tier[each.key].id
  eventbridge = true
}

resource "aws_s3_bucket_lifecycle_configuration" "hot" {
  bucket = aws_s3_bucket.tier["hot"].id
  rule {
    id     = "expire-replaced-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.hot_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  rule {
    # Review proxies are rebuilt on demand: rarely read ones go to Infrequent Access.
    id     = "review-media-infrequent"
    status = "Enabled"
    filter {
      prefix = "review/"
    }
    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.tier["archive"].id
  rule {
    id     = "deep-archive"
    status = "Enabled"
    filter {}
    transition {
      days          = var.archive_transition_days
      storage_class = "DEEP_ARCHIVE"
    }
    noncurrent_version_transition {
      noncurrent_days = 1
      storage_class   = "DEEP_ARCHIVE"
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# Cross-region replication of both tiers (the archive is the studio's last copy; the hot tier's
# replica lets another region take over). Replicas are encrypted with the replica region's key.
resource "aws_s3_bucket" "replica" {
  for_each = aws_s3_bucket.tier
  provider = aws.replica
  bucket   = "${each.value.bucket}-replica"
  #checkov:skip=CKV_AWS_144:This is the replication destination itself
  #checkov:skip=CKV2_AWS_62:Events come from the source bucket; the replica is only read after a region is lost
  #checkov:skip=CKV_AWS_18:Access is logged on the source bucket; the replica is written only by replication
}

resource "aws_s3_bucket_versioning" "replica" {
  for_each = aws_s3_bucket.replica
  provider = aws.replica
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "replica" {
  for_each = aws_s3_bucket.replica
  provider = aws.replica
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.replica.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "replica" {
  for_each                = aws_s3_bucket.replica
  provider                = aws.replica
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "replica" {
  for_each = aws_s3_bucket.replica
  provider = aws.replica
  bucket   = each.value.id
  rule {
    id     = "replica-deep-archive"
    status = "Enabled"
    filter {}
    transition {
      days          = each.key == "archive" ? 0 : 30
      storage_class = "DEEP_ARCHIVE"
    }
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_iam_role" "replication" {
  name = "${local.name}-s3-replication"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "s3.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "replication" {
  role = aws_iam_role.replication.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
        Resource = [for b in aws_s3_bucket.tier : b.arn]
      },
      {
        Effect   = "Allow"
        Action   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"]
        Resource = [for b in aws_s3_bucket.tier : "${b.arn}/*"]
      },
      {
        Effect   = "Allow"
        Action   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
        Resource = [for b in aws_s3_bucket.replica : "${b.arn}/*"]
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [aws_kms_key.main.arn]
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Encrypt", "kms:GenerateDataKey"]
        Resource = [aws_kms_key.replica.arn]
      },
    ]
  })
}

resource "aws_s3_bucket_replication_configuration" "tier" {
  for_each   = aws_s3_bucket.tier
  depends_on = [aws_s3_bucket_versioning.tier, aws_s3_bucket_versioning.replica]
  bucket     = aws_s3_bucket.tier[each.key].id
  role       = aws_iam_role.replication.arn
  rule {
    id     = "to-${var.replica_region}"
    status = "Enabled"
    filter {}
    delete_marker_replication {
      status = "Enabled"
    }
    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }
    destination {
      bucket        = aws_s3_bucket.replica[each.key].arn
      storage_class = "STANDARD_IA"
      encryption_configuration {
        replica_kms_key_id = aws_kms_key.replica.arn
      }
    }
  }
}

# Access logs of the tier buckets and of CloudFront.
resource "aws_s3_bucket" "logs" {
  bucket = local.buckets.logs
  #checkov:skip=CKV_AWS_18:The access-log bucket does not log its own access (it would log forever)
  #checkov:skip=CKV_AWS_144:Access logs are not replicated: they are kept for audit in one region
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new log objects
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    # CloudFront's standard logs are delivered with ACLs.
    object_ownership = "BucketOwnerPreferred"
  }
  #checkov:skip=CKV2_AWS_65:CloudFront's standard logging writes with ACLs: this bucket needs them (the tier buckets do not)
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# The shared file system of the storage zone (EFS): the render root the workers' render jobs
# write frames to (BIFROST_RENDER_ROOT=/mnt/render, mounted through the access point as uid 10001).
resource "aws_efs_file_system" "hot" {
  creation_token   = "${local.name}-hot"
  encrypted        = true
  kms_key_id       = aws_kms_key.main.arn
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"
  lifecycle_policy {
    transition_to_ia = "AFTER_30_DAYS"
  }
}

resource "aws_efs_backup_policy" "hot" {
  file_system_id = aws_efs_file_system.hot.id
  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_efs_mount_target" "hot" {
  for_each        = { for key, s in local.subnets : key => s if s.zone == "storage" }
  file_system_id  = aws_efs_file_system.hot.id
  subnet_id       = aws_subnet.zone[each.key].id
  security_groups = [aws_security_group.files.id]
}

resource "aws_efs_access_point" "workers" {
  file_system_id = aws_efs_file_system.hot.id
  posix_user {
    uid = 10001
    gid = 10001
  }
  root_directory {
    path = "/bifrost"
    creation_info {
      owner_uid   = 10001
      owner_gid   = 10001
      permissions = "0750"
    }
  }
}
