# `ethtool -K DEV tx off` without ethtool: ETHTOOL_STXCSUM(0) through the SIOCETHTOOL ioctl.
#
#   python3 tx-csum-off.py DEV
import array, fcntl, socket, struct, sys
SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17
value = array.array('B', struct.pack('II', ETHTOOL_STXCSUM, 0))
ifreq = struct.pack('16sP', sys.argv[1].encode(), value.buffer_info()[0]) + bytes(16)
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), SIOCETHTOOL, ifreq)
