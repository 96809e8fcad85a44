"""What only the official SDK uses: its blob stage and file-mode registrations."""
