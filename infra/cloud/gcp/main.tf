# Bifrost on Google Cloud: the AWS reference (../aws) mapped onto GCP's services
# (../README.md has the table). The zones:
#   web, service  the `cluster` subnet: GKE nodes (API, Prefect server, workers)
#   data          Cloud SQL and Memorystore, in Google's network through private services
#                 access (the `data` range): private addresses only, reached from the VPC
#   storage       Cloud Storage through Private Google Access (no public route needed)
#   public        (Cloud Load Balancing with Cloud Armor in front of the API: not written)
# Firewall: nothing comes in but the cluster's own traffic and Google's health checks.
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

locals {
  name   = "bifrost-${var.environment}"
  labels = { project = "bifrost", environment = var.environment }
}

resource "google_compute_network" "main" {
  name                    = local.name
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "cluster" {
  name                     = "${local.name}-cluster"
  network                  = google_compute_network.main.id
  region                   = var.region
  ip_cidr_range            = cidrsubnet(var.network_cidr, 4, 0)
  private_ip_google_access = true
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Cloud SQL and Memorystore live in Google's network, peered into the data zone's range.
resource "google_compute_global_address" "data" {
  name          = "${local.name}-data"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "data" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.data.name]
}

resource "google_compute_firewall" "cluster_internal" {
  name          = "${local.name}-cluster-internal"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = [google_compute_subnetwork.cluster.ip_cidr_range]
  allow {
    protocol = "tcp"
  }
  allow {
    protocol = "udp"
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Google's load balancer health checks (documented ranges) to the API on the nodes.
resource "google_compute_firewall" "health_checks" {
  name          = "${local.name}-health-checks"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = ["35.191.0.0/16", "130.211.0.0/22"]
  target_tags   = ["bifrost-api"]
  allow {
    protocol = "tcp"
    ports    = ["8000"]
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "deny_ingress" {
  name          = "${local.name}-deny-ingress"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]
  deny {
    protocol = "all"
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_kms_key_ring" "main" {
  name     = local.name
  location = var.region
}

resource "google_kms_crypto_key" "main" {
  name            = "${local.name}-at-rest"
  key_ring        = google_kms_key_ring.main.id
  rotation_period = "7776000s"
  lifecycle {
    prevent_destroy = true
  }
}

module "database" {
  source       = "./modules/database"
  name         = local.name
  region       = var.region
  network      = google_compute_network.main.id
  tier         = var.database_tier
  kms_key      = google_kms_crypto_key.main.id
  labels       = local.labels
  depends_on   = [google_service_networking_connection.data]
  replica_zone = var.replica_zone
}

module "cache" {
  source     = "./modules/cache"
  name       = local.name
  region     = var.region
  network    = google_compute_network.main.id
  memory_gb  = var.cache_memory_gb
  kms_key    = google_kms_crypto_key.main.id
  labels     = local.labels
  depends_on = [google_service_networking_connection.data]
}

module "storage" {
  source                  = "./modules/storage"
  name                    = local.name
  location                = var.storage_location
  kms_key                 = google_kms_crypto_key.main.id
  archive_transition_days = var.archive_transition_days
  labels                  = local.labels
}

module "compute" {
  source          = "./modules/compute"
  name            = local.name
  region          = var.region
  network         = google_compute_network.main.id
  subnet          = google_compute_subnetwork.cluster.id
  kms_key         = google_kms_crypto_key.main.id
  gpu_type        = var.gpu_type
  gpu_nodes_max   = var.gpu_nodes_max
  admin_cidrs     = var.admin_cidrs
  labels          = local.labels
  storage_buckets = module.storage.buckets
}
