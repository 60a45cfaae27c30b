// Two storage accounts. `data` holds everything the app and the Functions host read and write
// (the task hub's tables, queues and blob containers, host locks and keys) and is reached only
// with the app's managed identity: shared-key access is off. `content` holds nothing but the
// Azure Files content share an Elastic Premium app runs from; Azure Files cannot use a managed
// identity there (WEBSITE_CONTENTAZUREFILECONNECTIONSTRING takes only a key-based connection
// string), so that account alone keeps shared-key access on. Splitting them keeps the key away
// from the durable state. With privateNetworking both accounts close their public endpoints and
// are reached through the private endpoints of privatenetwork.bicep.

@description('Azure region of the accounts.')
param location string

@description('Name of the data account (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param dataAccountName string

@description('Name of the content-share account (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param contentAccountName string

@description('Redundancy of the data account, which holds the durable state. ZRS survives a zone outage; use Standard_LRS in a region without availability zones.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param dataSku string = 'Standard_ZRS'

@description('Close both accounts to public networks; the app reaches them through private endpoints.')
param privateNetworking bool = false

@description('Name of the content share (WEBSITE_CONTENTSHARE). The platform creates it for an open account; a closed one must have it beforehand.')
param contentShareName string

param tags object = {}

// Open: reachable over the internet, authenticated (the data account by Entra ID only). Private:
// the private endpoints alone; trusted Azure services keep their bypass.
var publicNetworkAccess = privateNetworking ? 'Disabled' : 'Enabled'
var networkAcls = {
  bypass: 'AzureServices'
  defaultAction: privateNetworking ? 'Deny' : 'Allow'
}

resource data 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: dataAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: dataSku
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    // The portal uses Entra ID, not the key, for data access.
    defaultToOAuthAuthentication: true
    // Only Entra ID (the app's managed identity) may use this account; see the header.
    allowSharedKeyAccess: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: networkAcls
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
      }
    }
  }
}

resource content 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: contentAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // The share holds only the deployed package, which a redeploy restores.
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    // The portal uses Entra ID, not the key, for data access.
    defaultToOAuthAuthentication: true
    // Required: the Premium content share is mounted with the account key (see the header).
    allowSharedKeyAccess: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: networkAcls
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
      }
    }
  }
}

resource contentFiles 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' existing = {
  parent: content
  name: 'default'
}

resource contentShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = if (privateNetworking) {
  parent: contentFiles
  name: contentShareName
}

output dataAccountName string = data.name
output dataAccountId string = data.id
output blobEndpoint string = data.properties.primaryEndpoints.blob
output queueEndpoint string = data.properties.primaryEndpoints.queue
output tableEndpoint string = data.properties.primaryEndpoints.table
output contentAccountName string = content.name
output contentAccountId string = content.id
