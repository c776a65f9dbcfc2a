"""Outbound: what the console sends to Shopify. The one Admin API client (`client`), the operations
it may ask for (`operations`), what each answer means (`classify`), the per-shop throttle shared by
every sender (`throttle`), the queue with lanes, pause and resume (`queue`), the senders
(`sender`), echo detection (`echo`), what the platform pushes (`flows`), and the call pages."""
