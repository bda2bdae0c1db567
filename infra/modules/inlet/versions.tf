terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: nothing this module uses was removed or renamed (see README.md, "Provider versions").
      version = ">= 5.40, < 7.0"
    }
  }
}
