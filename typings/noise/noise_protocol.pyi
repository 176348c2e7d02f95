from noise.state import CipherState, HandshakeState

class NoiseProtocol:
    handshake_state: HandshakeState
    cipher_state_encrypt: CipherState
    cipher_state_decrypt: CipherState
    handshake_hash: bytes
