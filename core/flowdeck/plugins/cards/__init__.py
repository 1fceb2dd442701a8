"""`metaflow.plugins.cards`: Flowdeck's cards (`flowdeck.cards`) under Metaflow's module path."""
