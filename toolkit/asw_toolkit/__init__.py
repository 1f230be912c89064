"""The testers' toolbox for the ASEAN Single Window gateway (distribution ``asw-toolkit``).

Sending and replaying documents, conformance runs, the sample generator, the NSW simulator and
the development PKI. It imports the gateway (``asw-gateway``); the gateway never imports it, and
a production install leaves it out.
"""
