"""chillybin: stock, reservations, the chiller and food safety, over HTTP."""
