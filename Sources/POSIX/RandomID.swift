#if canImport(Glibc)
import Glibc
#endif
import CPOSIX

/// A random 128-bit id written as 32 lowercase hex digits, as systemd writes its
/// invocation and boot ids: unique without any counter or coordination, so that
/// records about one thing can be found together long after its name was reused.
public enum RandomID {
    /// 16 bytes from getrandom(2).
    public static func make() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                ns_getrandom(buffer.baseAddress! + filled, buffer.count - filled)
            }
            if count > 0 {
                filled += count
            } else if count < 0 && errno != EINTR {
                // Only on a kernel without getrandom (before 3.17): the standard
                // library's generator, which needs one too, is all there is.
                var generator = SystemRandomNumberGenerator()
                for index in filled..<bytes.count { bytes[index] = generator.next() }
                filled = bytes.count
            }
        }
        return hex(bytes)
    }

    /// Whether `text` is such an id: exactly 32 digits 0-9 and a-f.
    public static func isValid(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
