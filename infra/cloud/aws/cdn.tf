# Review media through CloudFront: the review page gets signed URLs to proxies under review/ in
# the hot tier; CloudFront reads the bucket through origin access control (the bucket stays
# private) and only serves URLs signed with the review key group.
resource "aws_cloudfront_origin_access_control" "hot" {
  name                              = "${local.name}-hot"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_public_key" "review" {
  name        = "${local.name}-review"
  encoded_key = var.review_signing_public_key
}

resource "aws_cloudfront_key_group" "review" {
  name  = "${local.name}-review"
  items = [aws_cloudfront_public_key.review.id]
}

data "aws_cloudfront_cache_policy" "optimized" {
  name = "Managed-CachingOptimized"
}

resource "aws_cloudfront_response_headers_policy" "review" {
  name = "${local.name}-review"
  security_headers_config {
    content_type_options {
      override = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
    referrer_policy {
      referrer_policy = "same-origin"
      override        = true
    }
  }
}

resource "aws_cloudfront_distribution" "review" {
  enabled         = true
  comment         = "${local.name} review media"
  aliases         = [var.media_domain]
  http_version    = "http2and3"
  price_class     = "PriceClass_100"
  is_ipv6_enabled = true
  web_acl_id      = aws_wafv2_web_acl.review.arn
  origin {
    origin_id                = "hot"
    domain_name              = aws_s3_bucket.tier["hot"].bucket_regional_domain_name
    origin_path              = "/review"
    origin_access_control_id = aws_cloudfront_origin_access_control.hot.id
  }
  default_cache_behavior {
    target_origin_id           = "hot"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    cache_policy_id            = data.aws_cloudfront_cache_policy.optimized.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.review.id
    trusted_key_groups         = [aws_cloudfront_key_group.review.id]
    compress                   = true
  }
  viewer_certificate {
    acm_certificate_arn      = var.media_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }
  restrictions {
    geo_restriction {
      restriction_type = "whitelist"
      locations        = var.review_countries
    }
  }
  logging_config {
    bucket = aws_s3_bucket.logs.bucket_domain_name
    prefix = "cloudfront/"
  }
  #checkov:skip=CKV2_AWS_47:The Log4j rules (KnownBadInputs) are on; the check also demands AnonymousIpList, which would block reviewers on VPNs
  #checkov:skip=CKV_AWS_305:No root object: the distribution serves only signed URLs of single proxies, never a listing or a page
  #checkov:skip=CKV_AWS_310:One origin: the proxies exist only in the hot tier (its cross-region replica is the disaster-recovery copy, switched to by changing the origin)
}

# CloudFront's WAF must live in us-east-1; terraform's caller passes that provider.
resource "aws_wafv2_web_acl" "review" {
  provider = aws.us_east_1
  name     = "${local.name}-review"
  scope    = "CLOUDFRONT"
  default_action {
    allow {}
  }
  rule {
    name     = "AWSManagedRulesKnownBadInputsRuleSet"
    priority = 1
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }
  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${local.name}-review"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_logging_configuration" "review" {
  provider                = aws.us_east_1
  resource_arn            = aws_wafv2_web_acl.review.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf_review.arn]
}

resource "aws_cloudwatch_log_group" "waf_review" {
  provider          = aws.us_east_1
  name              = "aws-waf-logs-${local.name}-review"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.us_east_1.arn
}

# CloudFront may read review/ of the hot bucket, and only for this distribution.
resource "aws_s3_bucket_policy" "hot" {
  bucket = aws_s3_bucket.tier["hot"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudFrontReadsReviewMedia"
        Effect    = "Allow"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.tier["hot"].arn}/review/*"
        Condition = { StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.review.arn } }
      },
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.tier["hot"].arn, "${aws_s3_bucket.tier["hot"].arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
