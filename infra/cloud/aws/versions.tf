# Bifrost on AWS: the reference cloud layout (infra/cloud/README.md).
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

# The archive tier's replica lives in a second region (disaster recovery).
provider "aws" {
  alias  = "replica"
  region = var.replica_region
  default_tags {
    tags = local.tags
  }
}

# CloudFront's certificate and WAF live in us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = local.tags
  }
}

locals {
  name = "bifrost-${var.environment}"
  tags = {
    Project     = "bifrost"
    Environment = var.environment
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
