"""Protocol adapters: one subpackage per wire format family."""
