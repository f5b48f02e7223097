"""The learner's web pages: the start page, the form, the confirmation and the status page."""
