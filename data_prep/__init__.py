"""Per-subject preprocessing: resumable steps that turn a talking video into a subject folder."""
