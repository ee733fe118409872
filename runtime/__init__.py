"""What the CLI shares with loaders/ and diagnostics/: the project, the warehouse (embedded
or configured), secrets and their redaction, errors, the audit writer.

It imports none of elt/, loaders/, diagnostics/: floors point one way, down to here.
"""
