from noise.functions.keypair import KeyPair

class CipherState:
    # ``k`` is the 32-byte key once set; ``n`` the next nonce.
    k: bytes
    n: int

class HandshakeState:
    s: KeyPair
    e: KeyPair
    rs: KeyPair
    re: KeyPair
