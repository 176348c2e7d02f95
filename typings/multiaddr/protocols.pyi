class Protocol:
    code: int
    name: str
    codec: str | None
    def __init__(self, code: int, name: str, codec: str | None) -> None: ...

P_IP4: int
P_IP6: int
P_TCP: int
P_UDP: int
P_P2P: int
P_DNS: int
P_DNS4: int
P_DNS6: int
P_QUIC1: int
P_MEMORY: int

def protocol_with_name(name: str) -> Protocol: ...
def protocol_with_code(code: int) -> Protocol: ...
