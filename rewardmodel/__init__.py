"""rewardmodel package."""
