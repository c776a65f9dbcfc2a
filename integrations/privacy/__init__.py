"""Privacy: the page and command where support follows Shopify's mandatory privacy requests
(data requests and redactions): their 30-day deadline, state and proof, and, for admins, an
audited download of a data-request export. The jobs that carry them out live in `jobs.privacy`."""
