# One customer-managed key per region encrypts everything at rest: the database, the cache,
# the search domain, the buckets, EFS, the secrets and the logs.
data "aws_iam_policy_document" "kms" {
  # In a key policy "*" is the key itself, and the account must keep administering it.
  #checkov:skip=CKV_AWS_111:Key policy: the resource is this key only
  #checkov:skip=CKV_AWS_356:Key policy: the resource is this key only
  #checkov:skip=CKV_AWS_109:Key policy: the account root administers its key (AWS's default key policy)
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "main" {
  description         = "${local.name}: encryption at rest"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

resource "aws_kms_key" "us_east_1" {
  provider            = aws.us_east_1
  description         = "${local.name}: logs of the review media WAF"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms_us_east_1.json
}

data "aws_iam_policy_document" "kms_us_east_1" {
  #checkov:skip=CKV_AWS_111:Key policy: the resource is this key only
  #checkov:skip=CKV_AWS_356:Key policy: the resource is this key only
  #checkov:skip=CKV_AWS_109:Key policy: the account root administers its key (AWS's default key policy)
  source_policy_documents = [data.aws_iam_policy_document.kms.json]
  statement {
    sid       = "CloudWatchLogsUsEast1"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.us-east-1.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "replica" {
  provider            = aws.replica
  description         = "${local.name}: archive replica encryption at rest"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
}
